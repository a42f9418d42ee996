"""Headers every answer carries, whatever route wrote it.

`X-Content-Type-Options: nosniff` keeps browsers from guessing a type for our
JSON; the `Server` header names the service and no versions (aiohttp's default
names Python's and its own, a gift to anyone matching vulnerabilities).
Answers that carry a link or a token add `Cache-Control: no-store` themselves
(`NO_STORE`): a bearer credential must not rest in a shared cache.
"""

from __future__ import annotations

from aiohttp import hdrs, web, web_response

SERVER_NAME = "teleconsult"
NO_STORE = {hdrs.CACHE_CONTROL: "no-store"}


async def harden_response(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER_NAME
    response.headers["X-Content-Type-Options"] = "nosniff"


def setup_hardening(app: web.Application) -> None:
    app.on_response_prepare.append(harden_response)
    # aiohttp writes the answers to malformed requests itself, before any app code runs,
    # with the Server header it keeps in this module: name no versions there either.
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
