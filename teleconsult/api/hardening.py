"""Headers every answer carries, whatever route wrote it.

`X-Content-Type-Options: nosniff` keeps browsers from guessing a type for our
JSON; the `Server` header names the service and no versions (aiohttp's default
names Python's and its own, a gift to anyone matching vulnerabilities).
Answers that carry a link or a token add `Cache-Control: no-store` themselves
(`NO_STORE`): a bearer credential must not rest in a shared cache.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web, web_protocol, web_response

SERVER_NAME = "teleconsult"
NO_STORE = {hdrs.CACHE_CONTROL: "no-store"}
HEADERS = {hdrs.SERVER: SERVER_NAME, "X-Content-Type-Options": "nosniff"}


async def harden_response(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)


def setup_hardening(app: web.Application) -> None:
    app.on_response_prepare.append(harden_response)
    _harden_protocol_errors()


def _harden_protocol_errors() -> None:
    """aiohttp answers a request it cannot parse itself, before any app code (or signal)
    runs: its Server header comes from a module constant, and its answer is made by
    `RequestHandler.handle_error`. Both are set here once, so those answers carry the
    same headers (a test sends malformed requests and checks them)."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    handler = web_protocol.RequestHandler
    if getattr(handler.handle_error, "hardened", False):
        return
    original = handler.handle_error

    def handle_error(self: Any, *args: Any, **kwargs: Any) -> web.StreamResponse:
        response = original(self, *args, **kwargs)
        response.headers.update(HEADERS)
        return response

    handle_error.hardened = True  # type: ignore[attr-defined]
    handler.handle_error = handle_error  # type: ignore[method-assign]
