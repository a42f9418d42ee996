"""`Idempotency-Key`: a retried POST returns the first answer and does nothing more.

The key is claimed in the store before the request runs, so replicas agree on
who runs it. The answer is kept with the key until it expires
(IDEMPOTENCY_KEY_TTL_MS), whether it was a success or a client error. A request
that failed on our side (5xx) changed nothing, so its key is released and a
retry runs again. The same key with another request (another body, another
caller) is a 422; the same key while the first request still runs is a 409. A
key whose request never finished (the process died) frees itself after two
minutes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from teleconsult import keys
from teleconsult.api.errors import error_response
from teleconsult.errors import Conflict, InvalidRequest, ServiceError
from teleconsult.providers import Caller

HEADER = "Idempotency-Key"
RUNNING_LEASE = timedelta(minutes=2)
"""How long a key is held by a request still running: longer than any request takes."""
REPLAYED = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

DOC_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Makes a retry safe: the same key with the same request returns the first "
    "answer and does nothing more.",
}


class Unprocessable(ServiceError):
    status = 422


def fingerprint(caller: Caller, body: dict[str, Any]) -> str:
    canonical = json.dumps({"caller": caller.id, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotent(
    request: web.Request,
    caller: Caller,
    body: dict[str, Any],
    run: Callable[[], Awaitable[web.Response]],
) -> web.Response:
    key = request.headers.get(HEADER)
    if key is None:
        return await run()
    if not _KEY.match(key):
        raise InvalidRequest(f"{HEADER} must be 1 to 255 visible ASCII characters.")
    store = request.app[keys.STORE]
    now = request.app[keys.SERVICE].clock()
    ttl = timedelta(milliseconds=request.app[keys.SETTINGS].idempotency_key_ttl_ms)
    scope = f"{request.method} {request.path} {key}"
    this_request = fingerprint(caller, body)
    # Claimed briefly at first: if this process dies mid-request, the key frees itself.
    held = await store.claim_key(scope, this_request, now, now + RUNNING_LEASE)
    if held is not None:
        if held.fingerprint != this_request:
            raise Unprocessable(
                f"This {HEADER} was used for another request; use a new key for a new request."
            )
        if held.status is None:
            raise Conflict(
                f"A request with this {HEADER} is still being processed; retry it later."
            )
        replay = web.Response(status=held.status, text=held.body or None)
        if held.body:
            replay.content_type = "application/json"
        replay.headers[REPLAYED] = "true"
        return replay
    try:
        response = await run()
    except ServiceError as error:
        if error.status >= 500:
            await store.release_key(scope)
            raise
        response = error_response(error.status, error.message, error.error)
    except BaseException:
        await store.release_key(scope)
        raise
    finished = request.app[keys.SERVICE].clock()
    await store.finish_key(scope, response.status, response.text or "", finished + ttl)
    return response
