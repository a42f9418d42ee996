"""The one middleware every request passes: observe, then CORS, then error bodies.

In this order: `observe.observed` (the request id, the metrics and the log line,
around everything, so a preflight and every error body are counted and logged),
then `cors.with_cors` when CORS_ALLOWED_ORIGINS is set (so every error body is
an answer it can mark), then `errors.answer_errors` (every error as our body;
a body validated by aiohttp-apigami only for the handlers that read one). One
middleware rather than four: each layer aiohttp chains is another coroutine,
and the schema lookups ran for every GET, which has no body. Around them all, the
request's store calls share one time budget (`store.budget`); a WebSocket is a
session, not a request: each of its store calls has the store's whole timeout.
"""

from __future__ import annotations

from contextlib import nullcontext

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from teleconsult.api.cors import CORS, with_cors
from teleconsult.api.errors import answer_errors
from teleconsult.api.observe import observed
from teleconsult.store.budget import request_budget


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    websocket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    with nullcontext() if websocket else request_budget():
        return await observed(request, handler, _answer)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    policy = request.app.get(CORS)
    if policy is None:
        return await answer_errors(request, handler)
    return await with_cors(policy, request, handler)
