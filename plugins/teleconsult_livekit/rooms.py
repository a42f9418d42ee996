"""LiveKit's RoomService through its official SDK, with what the SDK leaves to its caller.

livekit-api 1.2 puts no timeout on its calls (`TwirpClient` passes `timeout=None` to
aiohttp, which then waits forever), retries nothing once failover is off, and raises
its own errors. Here each call gets a deadline, is repeated when it failed in a way
that may pass (no connection, a timeout, a 5xx, a 429), and ends as a `ProviderError`
naming the operation: 502 (an error or a bad answer), 503 (unreachable, rate
limited), 504 (no answer in time). Every call made here is safe to repeat: CreateRoom
is idempotent on the name we choose (a repeat answers the room the first call made,
which is how a lost answer is repaired), DeleteRoom of a room already gone is a
`not_found` taken as deleted, RemoveParticipant of one already gone too, and the rest
are reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol import models
from livekit.protocol import room as room_pb

from teleconsult.plugin import CallPolicy, ProviderError, ProviderFailure

log = logging.getLogger(__name__)
T = TypeVar("T")

PROVIDER = "livekit"
NOT_FOUND = "not_found"
UNAVAILABLE = {"unavailable", "resource_exhausted"}
CHECK_ROOM = "teleconsult-check"
"""A name no room is given: listing it tells whether RoomService answers."""


@dataclass(frozen=True)
class _Failure:
    kind: ProviderFailure
    detail: str
    retry: bool


class RoomClient:
    """The RoomService calls the provider makes, over the one session the app opened."""

    def __init__(
        self, lk: api.LiveKitAPI, session: aiohttp.ClientSession, policy: CallPolicy
    ) -> None:
        self.lk = lk
        self.session = session
        self.policy = policy

    async def close(self) -> None:
        await self.lk.aclose()  # leaves our session open: it is ours to close
        await self.session.close()

    async def create_room(self, name: str, max_participants: int) -> None:
        request = room_pb.CreateRoomRequest(name=name, max_participants=max_participants)
        await self._call("create a room", lambda: self.lk.room.create_room(request))

    async def delete_room(self, name: str) -> None:
        """Delete a room, disconnecting everyone in it; one already gone counts as deleted."""
        request = room_pb.DeleteRoomRequest(room=name)
        await self._call("delete a room", _gone_is_done(lambda: self.lk.room.delete_room(request)))

    async def remove_participant(self, name: str, identity: str) -> None:
        """Disconnect one participant now; one already gone counts as removed."""
        request = room_pb.RoomParticipantIdentity(room=name, identity=identity)
        remove = _gone_is_done(lambda: self.lk.room.remove_participant(request))
        await self._call("remove a participant", remove)

    async def participants(self, name: str) -> list[models.ParticipantInfo]:
        request = room_pb.ListParticipantsRequest(room=name)
        answer = await self._call(
            "list a room's participants", lambda: self.lk.room.list_participants(request)
        )
        return list(answer.participants)

    async def check(self) -> None:
        request = room_pb.ListRoomsRequest(names=[CHECK_ROOM])
        await self._call("list rooms", lambda: self.lk.room.list_rooms(request))

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                async with asyncio.timeout(self.policy.timeout_seconds):
                    return await call()
            except api.ServerError as error:
                failure = _server_failure(error)
            except Exception as error:
                failure = _transport_failure(error, self.policy.timeout_seconds)
            log.info(
                "%s %s failed (attempt %d of %d): %s",
                PROVIDER, operation, attempt, self.policy.max_attempts, failure.detail,
            )  # fmt: skip
            if not failure.retry or attempt == self.policy.max_attempts:
                raise ProviderError(PROVIDER, operation, failure.kind, failure.detail)
            backoff = self.policy.backoff_seconds * 2.0 ** (attempt - 1)
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311 - jitter
        raise AssertionError("unreachable: the loop returns or raises")


def _gone_is_done(call: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """`call`, for which LiveKit's `not_found` (already gone) is success."""

    async def tolerant() -> None:
        try:
            await call()
        except api.ServerError as error:
            if error.code != NOT_FOUND:
                raise

    return tolerant


def _server_failure(error: api.ServerError) -> _Failure:
    """A Twirp error answer: LiveKit's code says whether waiting may help."""
    detail = f"HTTP {error.status} ({error.code})" + (f": {error.message}" if error.message else "")
    detail = detail[:200]
    if error.status in (429, 503) or error.code in UNAVAILABLE:
        return _Failure("unreachable", detail, retry=True)
    return _Failure("bad_answer", detail, retry=error.status >= 500)


def _transport_failure(error: Exception, timeout: float) -> _Failure:
    """No Twirp answer: no connection, no answer in time, or an answer that is not one."""
    if isinstance(error, TimeoutError):  # before ClientError: aiohttp's timeouts are both
        return _Failure("timeout", f"no answer within {timeout:g} s", retry=True)
    if isinstance(error, aiohttp.ClientConnectorError):
        return _Failure("unreachable", "cannot connect", retry=True)
    if isinstance(error, aiohttp.ClientError):
        return _Failure("unreachable", f"connection failed ({type(error).__name__})", retry=True)
    if isinstance(error, DecodeError):
        return _Failure("bad_answer", "the answer is not a RoomService message", retry=False)
    raise error
