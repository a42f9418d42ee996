"""Every request: a request id, one "request completed" log line, and HTTP metrics
(`observed`, the outermost part of `api.middleware`).

The id comes from `x-request-id` when it is a sane token (else a new one) and is
returned in the response's `x-request-id`; every log line written while the
request runs carries it as `reqId`. Probes and scrapes are logged at debug, so
they do not drown the lines that matter.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from teleconsult.errors import ClientClosed
from teleconsult.observability import logs, redaction
from teleconsult.services import SERVICES

log = logging.getLogger("teleconsult.http")

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID = web.RequestKey("request_id", str)
"""The request's id, for what records it (the audit trail)."""
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUIET_PREFIX = "/-/"


def request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if given and _SANE_ID.match(given) else secrets.token_hex(16)


def route_of(request: web.Request) -> str:
    """The route template (`/teleconsultation/{roomId}`): ids would make endless label values."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


Answer = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
"""What `observed` measures: the request's answer, error bodies included."""

CLIENT_CLOSED = 499
"""The status logged (and `client_closed` the metric label) when the client went away first:
client behaviour, which must not set off the alerts on 5xx answers."""


async def observed(request: web.Request, handler: Handler, answer: Answer) -> web.StreamResponse:
    """`answer(request, handler)`, with its request id, its metrics and its log line."""
    reqid = request[REQUEST_ID] = request_id(request)
    logs.begin_request(reqid, request.app[SERVICES].redactor)
    authorization = request.headers.get("Authorization", "")
    redaction.sensitive(
        [authorization, authorization.partition(" ")[2], request.headers.get("Cookie")]
    )
    started = time.perf_counter()
    status = 500
    try:
        response = await answer(request, handler)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = reqid
        return response
    except web.HTTPException as error:  # redirects and the like pass through here
        status = error.status
        error.headers[REQUEST_ID_HEADER] = reqid
        raise
    except ClientClosed:
        status = CLIENT_CLOSED
        return web.Response(status=status)  # never sent: nobody is there to read it
    except asyncio.CancelledError:
        if request.transport is None or request.transport.is_closing():
            status = CLIENT_CLOSED  # the server cancels a handler whose client left
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_of(request)
        label = "client_closed" if status == CLIENT_CLOSED else str(status)
        if _websocket(request, status):  # it lasted a call, not an answer: counted, not timed
            request.app[SERVICES].metrics.count_websocket(request.method, route)
        else:
            request.app[SERVICES].metrics.observe_http(request.method, route, label, elapsed)
        quiet = status == CLIENT_CLOSED or request.path.startswith(QUIET_PREFIX)
        method = request.method
        # Redacted here, where it is known which values can hold anything: the path and a
        # method of the client's invention; the route is our template, the rest numbers.
        fields = {
            "req": {
                "method": method if method in hdrs.METH_ALL else redaction.redact(method),
                "url": redaction.redact(request.path),
                "route": route,
            },
            "res": {"statusCode": status},
            "responseTime": round(elapsed * 1000, 1),
        }
        level = logging.DEBUG if quiet else logging.INFO
        log.log(level, "request completed", extra={"fields": fields, "redacted": True})


def _websocket(request: web.Request, status: int) -> bool:
    """An upgraded WebSocket: 101, or "client closed" when it ended with its page."""
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    return upgrade and status in (101, CLIENT_CLOSED)
