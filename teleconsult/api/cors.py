"""CORS: the pages of the origins in CORS_ALLOWED_ORIGINS may call the API from a browser.

Off unless CORS_ALLOWED_ORIGINS is set: then the middleware passes every request
on untouched and the API stays same-origin only, as before. When set, it covers
the API's routes (the teleconsultations, /credentials, /settings/...), not the
probes, the documentation or a plugin's pages:
- a preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) from a
  listed origin is a 204 naming that origin, the route's methods, the request
  headers the API reads and how long the browser may keep the answer (the
  browser compares what its page wants to send with these); from any
  other origin it is a 403 `origin_not_allowed` without them, so the browser
  sends nothing more;
- every other answer of these routes, errors included, names a listed origin
  and the response headers its page may read (`x-request-id`, ...), so a
  frontend can read an error's body;
- every answer of these routes says `Vary: Origin`, so a cache never hands one
  origin's answer to another.
Credentials (cookies) are never allowed (no `Access-Control-Allow-Credentials`): a
caller says who it is in a header or a bearer token, which the page sends itself.

Our own code rather than aiohttp-cors (0.8.1): that package adds an OPTIONS
route to each resource (which would then be in the OpenAPI document and in every
405's `Allow`), never says `Vary: Origin`, and refuses a preflight with a plain-text
403 rather than our error body; what we need fits in this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from teleconsult.api.caller import default_path
from teleconsult.api.errors import answer_errors, error_response
from teleconsult.api.idempotency import HEADER as IDEMPOTENCY_KEY
from teleconsult.api.idempotency import REPLAYED
from teleconsult.api.observe import REQUEST_ID_HEADER
from teleconsult.configuration.service_config import PathStep, ServiceConfig
from teleconsult.configuration.settings import Settings

MAX_AGE_SECONDS = 600
"""How long a browser may keep a preflight's answer: a change of CORS_ALLOWED_ORIGINS
reaches open pages within ten minutes (Chromium keeps one two hours at most)."""
EXPOSED_HEADERS = ", ".join((REQUEST_ID_HEADER, REPLAYED, hdrs.RETRY_AFTER))
"""The response headers, beyond the few every page may read, that a frontend needs: the
request id to quote, whether an `Idempotency-Key` replayed, when to retry."""
_SHOWN_ORIGIN_CHARS = 200


@dataclass(frozen=True)
class CorsPolicy:
    """Who may call from a browser, what they may send, and on which routes."""

    origins: frozenset[str]
    """Exact origins, as browsers send them in `Origin`."""
    request_headers: str
    """`Access-Control-Allow-Headers`: every request header the API reads."""
    resources: tuple[web.AbstractResource, ...]
    """The API's routes; the probes, the documentation and plugins' pages are not here."""

    async def methods(self, request: web.Request) -> frozenset[str]:
        """The methods of the API's routes at the request's path; none when it names no
        API route. (A preflight finds no route of its own: OPTIONS is nowhere registered.)"""
        methods: set[str] = set()
        for resource in self.resources:
            _, allowed = await resource.resolve(request)
            methods |= allowed
        return frozenset(methods)

    def preflight(self, origin: str, methods: frozenset[str]) -> web.Response:
        """The answer to a preflight: what a page of `origin` may send, or a 403."""
        if origin not in self.origins:
            response = error_response(
                403,
                f"The origin {origin[:_SHOWN_ORIGIN_CHARS]} may not call this API from a "
                "browser: it is not in CORS_ALLOWED_ORIGINS.",
                "origin_not_allowed",
            )
        else:
            response = web.Response(
                status=204,
                headers={
                    hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
                    hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(sorted(methods)),
                    hdrs.ACCESS_CONTROL_ALLOW_HEADERS: self.request_headers,
                    hdrs.ACCESS_CONTROL_MAX_AGE: str(MAX_AGE_SECONDS),
                },
            )
        _vary_on_origin(response.headers)
        return response

    def mark(self, headers: CIMultiDict[str], origin: str | None) -> None:
        """Add to an answer of an API route what a browser needs to let its page read it."""
        _vary_on_origin(headers)
        if origin is not None and origin in self.origins:
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS


CORS = web.AppKey("cors", CorsPolicy)
"""Set when CORS_ALLOWED_ORIGINS lists origins: the API answers their pages' calls."""


def _vary_on_origin(headers: CIMultiDict[str]) -> None:
    vary = headers.get(hdrs.VARY)
    if vary is None:
        headers[hdrs.VARY] = hdrs.ORIGIN
    elif hdrs.ORIGIN.lower() not in (part.strip().lower() for part in vary.split(",")):
        headers[hdrs.VARY] = f"{vary}, {hdrs.ORIGIN}"


def setup_cors(
    app: web.Application,
    settings: Settings,
    config: ServiceConfig,
    api_routes: Iterable[web.AbstractRoute],
) -> None:
    """Turn CORS on for `api_routes` when CORS_ALLOWED_ORIGINS lists origins."""
    if not settings.http.cors_allowed_origins:
        return
    resources = {route.resource: None for route in api_routes if route.resource is not None}
    app[CORS] = CorsPolicy(
        origins=settings.http.cors_allowed_origins,
        request_headers=", ".join(sorted(request_headers(settings, config))),
        resources=tuple(resources),
    )


def request_headers(settings: Settings, config: ServiceConfig) -> set[str]:
    """The request headers a frontend may send: the body's type, the caller's id (the header
    `userIdPathInRequest` starts from, else USERID_HEADER_KEY) and groups, a bearer token,
    an `Idempotency-Key` and an `x-request-id`."""
    names = {
        hdrs.CONTENT_TYPE,
        hdrs.AUTHORIZATION,
        IDEMPOTENCY_KEY,
        REQUEST_ID_HEADER,
        settings.access.groups_header_key,
    }
    path = config.user_id_path or default_path(settings.access.userid_header_key)
    if len(path) > 1 and path[0] == PathStep("headers", "object"):
        names.add(str(path[1].source))
    return {name.lower() for name in names}


async def with_cors(
    policy: CorsPolicy, request: web.Request, handler: Handler
) -> web.StreamResponse:
    """The answer (`answer_errors`: error bodies included) with what a browser needs, or the
    answer to a preflight; called by `api.middleware` when CORS is on."""
    methods = await policy.methods(request)
    if not methods:
        return await answer_errors(request, handler)
    origin = request.headers.get(hdrs.ORIGIN)
    if (
        request.method == hdrs.METH_OPTIONS
        and origin is not None
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        return policy.preflight(origin, methods)
    try:
        response = await answer_errors(request, handler)
    except web.HTTPException as error:  # a redirect; errors are answers by now
        policy.mark(error.headers, origin)
        raise
    policy.mark(response.headers, origin)
    return response
