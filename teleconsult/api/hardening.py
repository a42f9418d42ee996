"""Headers every answer carries, whatever route wrote it.

`X-Content-Type-Options: nosniff` keeps browsers from guessing a type for our
JSON; the `Server` header names the service and no versions (aiohttp's default
names Python's and its own, a gift to anyone matching vulnerabilities).
Answers that carry a link or a token add `Cache-Control: no-store` themselves
(`NO_STORE`): a bearer credential must not rest in a shared cache.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import hdrs, http_exceptions, web, web_protocol, web_response

from teleconsult.api.errors import error_response

log = logging.getLogger(__name__)

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
    same headers (a test sends malformed requests and checks them). A line over aiohttp's
    limit (8190 bytes) is answered with our JSON error, naming the limit, not the line."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    handler = web_protocol.RequestHandler
    if getattr(handler.handle_error, "hardened", False):
        return
    original = handler.handle_error

    def handle_error(
        self: Any,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response: web.StreamResponse
        if isinstance(exc, http_exceptions.LineTooLong):
            response = _line_too_long(exc)
        else:
            response = original(self, request, status, exc, message)
        response.headers.update(HEADERS)
        return response

    handle_error.hardened = True  # type: ignore[attr-defined]
    handler.handle_error = handle_error  # type: ignore[method-assign]


def _line_too_long(error: http_exceptions.LineTooLong) -> web.Response:
    """431 with our error body. aiohttp's own answer and log line quote the start of the
    line, which may be a token or a link: here neither does, and only the limit is named."""
    limit = error.args[1]  # (line, limit, actual size)
    log.warning("malformed HTTP request: a line longer than %s bytes", limit)
    response = error_response(
        431,
        f"The request line or a header is longer than {limit} bytes (the limit); send it shorter.",
        "header_too_large",
    )
    response.force_close()
    return response
