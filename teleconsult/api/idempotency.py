"""`Idempotency-Key`: a retried POST returns the first answer and does nothing more.

The key is claimed in the store before the request runs, so replicas agree on
who runs it. A success is kept with the key until it expires
(IDEMPOTENCY_KEY_TTL_MS). A request that certainly changed nothing (any 4xx, a
provider failure) releases its key, so a retry runs afresh and nothing is
stored for it; one whose outcome is unknown (the store failed, a deadline
passed, the process died) keeps it until its running lease ends (10 minutes),
so a retry can never make the change twice. A key is its caller's own (scoped by
method, path, caller and key): another caller's key of the same name is another
key, and says nothing of this one. The same key with another body is a 422; the
same key while the first request still runs is a 409. One caller holds at most
IDEMPOTENCY_MAX_KEYS_PER_CALLER unexpired keys (else 429), and the reconciler
deletes expired keys in batches. Callers who do not say who they are are one
caller (only while ALLOW_ANONYMOUS_WRITES lets them write).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web

from teleconsult.core.domain import ANONYMOUS
from teleconsult.errors import (
    Conflict,
    InvalidRequest,
    ServiceError,
    TooManyRequests,
    Unprocessable,
)
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES
from teleconsult.store.base import KeyClaim

HEADER = "Idempotency-Key"
RUNNING_LEASE = timedelta(minutes=10)
"""How long a key is held by a request still running: far longer than any request takes
(a change has a one-minute deadline), so a claim never lapses under a live request."""
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


def fingerprint(caller: Caller, body: dict[str, Any]) -> str:
    canonical = json.dumps({"caller": caller.id, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_scope(method: str, path: str, caller: Caller, key: str) -> str:
    """Where a key is looked up: each caller's keys apart (the anonymous caller's too, which
    is not the caller named `public`), so one caller's key neither blocks nor reveals
    another's. A JSON list: no two scopes read alike, whatever the path or the id hold."""
    return json.dumps([method, path, caller.id, key], ensure_ascii=False)


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
        raise InvalidRequest(f"{HEADER} must be 1 to 255 visible ASCII characters.", path=HEADER)
    stored_keys = request.app[SERVICES].store.idempotency
    clock = request.app[SERVICES].service.clock
    ttl = timedelta(milliseconds=request.app[SERVICES].settings.access.idempotency_key_ttl_ms)
    scope = key_scope(request.method, request.path, caller, key)
    this_request = fingerprint(caller, body)
    token = secrets.token_hex(16)
    holder = caller.id or ANONYMOUS
    now = clock()
    # Held for RUNNING_LEASE while running: if this process dies, the key frees itself.
    held = await stored_keys.claim_key(
        KeyClaim(scope, holder, this_request, token, now, now + RUNNING_LEASE)
    )
    if held is not None:  # a retry: answered whatever the caller's allowance
        if held.fingerprint != this_request:
            raise Unprocessable(
                f"This {HEADER} was used for another request; use a new key for a new request."
            )
        if held.status is None:
            raise Conflict(
                f"A request with this {HEADER} is still being processed; retry it later.",
                code="idempotency_in_progress",
            )
        replay = web.Response(status=held.status, text=held.body or None)
        if held.body:
            replay.content_type = "application/json"
        replay.headers[REPLAYED] = "true"
        return replay
    limit = request.app[SERVICES].settings.access.idempotency_max_keys_per_caller
    # A new key counts against the caller's allowance (a quota: concurrent requests may
    # pass it by a few). Over it, the key is given back and the request does not run.
    if await stored_keys.count_keys(holder, now) > limit:
        await stored_keys.release_key(scope, token)
        raise TooManyRequests(
            f"This caller holds {limit} unexpired {HEADER}s (IDEMPOTENCY_MAX_KEYS_PER_CALLER); "
            "a retry with a key already used is still answered, a new key only once older "
            "ones expire."
        )
    try:
        response = await run()
    except ServiceError as error:
        if not error.may_have_written:
            await stored_keys.release_key(scope, token)  # nothing happened: a retry runs afresh
        # Otherwise the key stays claimed until its lease ends: a retry cannot run twice.
        raise
    await stored_keys.finish_key(scope, token, response.status, response.text or "", clock() + ttl)
    return response
