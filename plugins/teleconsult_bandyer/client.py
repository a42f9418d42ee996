"""A client for every Kaleyra Video operation: timeouts, retries, and failures we can name.

Retries follow what is safe. A call that never reached Kaleyra (no connection)
or that Kaleyra refused unprocessed (429) is retried whatever it does; a call
that may have been carried out (5xx, timeout, dropped connection) is retried
only if repeating it does no harm (reads, deletes, creating a user with a fixed
id). A failure becomes a `ProviderError` naming the operation: 502 for a bad
answer, 503 when Kaleyra cannot be reached, 504 when it did not answer in time.
The API key is sent in a header and appears nowhere else: not in errors, not in
logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from teleconsult.domain import RoomSpec
from teleconsult.errors import ProviderError, ProviderFailure
from teleconsult_bandyer import kaleyra

log = logging.getLogger(__name__)

PROVIDER = "bandyer"
OK = frozenset({200, 201, 204})
MAX_RETRY_AFTER_SECONDS = 5.0
"""A Retry-After longer than this is not waited for: the caller is waiting on us."""

T = TypeVar("T")


@dataclass(frozen=True)
class ClientOptions:
    base_url: str
    api_key: str = field(repr=False)
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    backoff_seconds: float = 0.2


@dataclass(frozen=True)
class Answer:
    status: int
    body: object


@dataclass(frozen=True)
class _Failure:
    kind: ProviderFailure
    detail: str
    retry: bool
    wait: float | None = None


class KaleyraClient:
    def __init__(self, options: ClientOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self._session = session
        self._base_url = options.base_url.rstrip("/")

    async def close(self) -> None:
        await self._session.close()

    # -- operations (kaleyra.md) ----------------------------------------------------------------

    async def create_user(self, user_id: str, role: str) -> str:
        """Create a user with our own id; one that already exists (409) counts as created."""
        answer = await self.call(
            "create a user", "POST", kaleyra.USERS,
            json_body=kaleyra.create_user_body(user_id, role), safe=True, also_ok={409},
        )  # fmt: skip
        if answer.status == 409:
            return user_id
        return self.read("create a user", answer, kaleyra.created_user_id)

    async def list_users(self, limit: int = 1) -> object:
        answer = await self.call(
            "list users",
            "GET",
            kaleyra.USERS,
            params={"offset": "0", "limit": str(limit)},
            safe=True,
        )
        return answer.body

    async def create_room(self, spec: RoomSpec) -> kaleyra.RoomAnswer:
        answer = await self.call(
            "create a room",
            "POST",
            kaleyra.ROOMS,
            json_body=kaleyra.create_room_body(spec),
            safe=False,
        )
        return self.read("create a room", answer, kaleyra.created_room)

    async def get_room(self, room_id: str) -> dict[str, Any]:
        answer = await self.call(
            "get a room", "GET", _path(kaleyra.ROOM, room_id=room_id), safe=True
        )
        return self.read("get a room", answer, kaleyra.room_details)

    async def delete_room(self, room_id: str) -> None:
        """Delete a room; one already gone (404) counts as deleted."""
        await self.call(
            "delete a room",
            "DELETE",
            _path(kaleyra.ROOM, room_id=room_id),
            safe=True,
            also_ok={404},
        )

    async def create_sdk_credentials(self, user_id: str, expires_in: int) -> object:
        # Each call mints a new token: repeating one that may have succeeded does no harm.
        answer = await self.call(
            "create SDK credentials", "POST", kaleyra.SDK_CREDENTIALS,
            json_body=kaleyra.credentials_body(user_id, expires_in), safe=True,
        )  # fmt: skip
        return answer.body

    async def list_uploads(self, room_id: str) -> list[str]:
        answer = await self.call(
            "list the room's files", "GET", kaleyra.UPLOADS,
            params={kaleyra.ROOM_ID_QUERY: room_id}, safe=True,
        )  # fmt: skip
        return self.read("list the room's files", answer, kaleyra.upload_keys)

    async def delete_upload(self, key: str) -> None:
        await self.call(
            "delete a file", "DELETE", _path(kaleyra.UPLOAD, key=key), safe=True, also_ok={404}
        )

    async def upload_virtual_background(
        self, content: bytes, filename: str, content_type: str
    ) -> object:
        form = aiohttp.FormData()
        form.add_field(
            kaleyra.VIRTUAL_BACKGROUND_FIELD, content, filename=filename, content_type=content_type
        )
        answer = await self.call(
            "upload a virtual background", "POST", kaleyra.VIRTUAL_BACKGROUNDS,
            form=form, safe=False,
        )  # fmt: skip
        return answer.body

    async def set_default_background(self, alias: str) -> object:
        answer = await self.call(
            "set the default background", "PUT", kaleyra.COMPANY,
            json_body={kaleyra.BACKGROUND_ALIAS: alias}, safe=True,
        )  # fmt: skip
        return answer.body

    # -- transport ------------------------------------------------------------------------------

    def read(self, operation: str, answer: Answer, parse: Callable[[object], T]) -> T:
        """Parse a 2xx body; a body of the wrong shape is a bad answer (502)."""
        try:
            return parse(answer.body)
        except kaleyra.UnexpectedAnswer as error:
            raise ProviderError(
                PROVIDER, operation, "bad_answer", f"unexpected answer: {error}"
            ) from None

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        safe: bool,
        json_body: object = None,
        form: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
        also_ok: Collection[int] = (),
    ) -> Answer:
        """One operation, with as many attempts as is safe; returns a 2xx (or `also_ok`) answer."""
        url = self._base_url + path
        for attempt in range(1, self.options.max_attempts + 1):
            started = time.monotonic()
            outcome = await self._attempt(method, url, safe, json_body, form, params, also_ok)
            elapsed_ms = (time.monotonic() - started) * 1000
            if isinstance(outcome, Answer):
                log.debug("kaleyra %s: %s in %.0f ms", operation, outcome.status, elapsed_ms)
                return outcome
            log.info(
                "kaleyra %s failed (attempt %d of %d, %.0f ms): %s",
                operation, attempt, self.options.max_attempts, elapsed_ms, outcome.detail,
            )  # fmt: skip
            if not outcome.retry or attempt == self.options.max_attempts:
                raise ProviderError(PROVIDER, operation, outcome.kind, outcome.detail)
            await asyncio.sleep(self._pause(attempt, outcome.wait))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _attempt(
        self,
        method: str,
        url: str,
        safe: bool,
        json_body: object,
        form: aiohttp.FormData | None,
        params: Mapping[str, str] | None,
        also_ok: Collection[int],
    ) -> Answer | _Failure:
        headers = {kaleyra.API_KEY_HEADER: self.options.api_key}
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_seconds)
        try:
            async with self._session.request(
                method, url, json=json_body if form is None else None, data=form,
                params=params, headers=headers, timeout=timeout,
            ) as response:  # fmt: skip
                status = response.status
                text = await response.text()
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            return _Failure(
                "timeout", f"no answer within {self.options.timeout_seconds:g} s", retry=safe
            )
        except aiohttp.ClientConnectorError:
            return _Failure("unreachable", "cannot connect", retry=True)  # nothing was sent
        except aiohttp.ClientError as error:
            return _Failure(
                "unreachable", f"connection failed ({type(error).__name__})", retry=safe
            )
        body = _decode(text)
        if status == 429:
            return _Failure(
                "unreachable", "rate limited (HTTP 429)", retry=True, wait=_seconds(retry_after)
            )
        if status in OK or status in also_ok:
            if body is _MALFORMED:
                return _Failure("bad_answer", f"the HTTP {status} answer is not JSON", retry=False)
            return Answer(status, body)
        message = kaleyra.error_message(body)
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        return _Failure("bad_answer", detail, retry=safe and status >= 500)

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        backoff: float = self.options.backoff_seconds * 2.0 ** (attempt - 1)
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


_MALFORMED = object()


def _decode(text: str) -> object:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return _MALFORMED


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is ignored (we back off instead)."""
    if retry_after is None:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return None


def _path(template: str, **values: str) -> str:
    return template.format(**{name: quote(value, safe="") for name, value in values.items()})
