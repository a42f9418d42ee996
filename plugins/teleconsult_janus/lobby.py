"""The lobby and the end of a call, kept in the provider's storage: `call/<room>`, one
document per room, changed by compare-and-set only (every replica reads and writes the same).

With CALL_PAGE_LOBBY on, a participant below plus who was not admitted in this call waits,
as on `webrtc` (`state.seat`'s rule): their page's `POST .../token` gets no Janus token but
202 (`Wait`), and their knock is kept (`waiting`: per participant, since when, last seen).
The page asks again every `POLL` (a short poll: Janus has no channel to teleconsult's pages);
a knock not asked for in `KNOCK_TTL` (a page gone without a word) is no longer listed, and a
page that leaves or closes while it waits withdraws its knock at once (`withdraw`). A plus
participant's page reads the knocks (`knocks`) on the same period and decides (`decide`):
admitted, the participant is remembered for the call (`admitted`) and their page's next poll
gets its token, so only then does it enter Janus's `allowed` list, and Janus itself keeps the
lobby; declined, the waiting page's next poll is refused (403 `declined`) and the decision is
kept until that participant knocks again. Knocks and decisions are reported to the core
(webhooks, audit), as `webrtc`'s lobby reports them; joins come from Janus's events.

Ending the call for everyone (`end`) records it here first, so that every later request of
its links is refused (410 `ended`, as `webrtc`'s), then destroys the Janus room: every page in
it is disconnected at once, whichever replica serves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from teleconsult.plugin import (
    CALL_ENDED,
    PARTICIPANT_ADMITTED,
    PARTICIPANT_DECLINED,
    PARTICIPANT_WAITING,
    CallSeat,
    ProviderError,
    ProviderEvent,
    ProviderStorage,
    ReportEvents,
    VersionConflict,
    page_time,
)

log = logging.getLogger("teleconsult.janus")

NAME = "janus"
CALL_KEY = "call/"
POLL = timedelta(seconds=2)
"""How often a waiting page asks again, and a plus participant's page reads the knocks."""
KNOCK_TTL = timedelta(seconds=10)
"""A knock its page stopped asking about for that long is gone (the page was closed)."""
SEEN_EVERY = timedelta(seconds=4)
"""A waiting page's poll writes its knock's last-seen time at most that often."""
MAX_ATTEMPTS = 20
"""Compare-and-set attempts on one document before giving up (503)."""
ENDED_BY_HOST = "ended_by_host"

Decision = Literal["admit", "decline"]
R = TypeVar("R")


@dataclass
class CallState:
    """One room's lobby and end, as stored."""

    waiting: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Provider user id -> when they knocked (ISO 8601) and last asked (epoch ms), in order."""
    admitted: list[str] = field(default_factory=list)
    """Admitted in this call: they do not wait again."""
    declined: list[str] = field(default_factory=list)
    """Declined while waiting: their waiting page is told so, until they knock again."""
    ended_at: str | None = None
    end_reason: str | None = None

    @classmethod
    def of(cls, document: dict[str, Any]) -> CallState:
        return cls(
            waiting={str(u): (str(since), int(seen)) for u, since, seen in document["waiting"]},
            admitted=[str(user) for user in document["admitted"]],
            declined=[str(user) for user in document["declined"]],
            ended_at=document["endedAt"],
            end_reason=document["endReason"],
        )

    def document(self) -> dict[str, Any]:
        return {
            "waiting": [[user, since, seen] for user, (since, seen) in self.waiting.items()],
            "admitted": self.admitted,
            "declined": self.declined,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
        }

    def knocks(self, now: datetime) -> list[tuple[str, str]]:
        """Who waits now (their page asked within `KNOCK_TTL`) and since when."""
        oldest = _millis(now - KNOCK_TTL)
        return [(user, since) for user, (since, seen) in self.waiting.items() if seen >= oldest]


@dataclass(frozen=True)
class Wait:
    """The page waits: no token; it asks again after `POLL`."""

    since: str


Entry = Literal["enter", "declined", "ended"] | Wait


class Calls:
    """The rooms' `call/` documents, and the core told of what the lobby and the end did."""

    def __init__(
        self,
        storage: ProviderStorage,
        clock: Callable[[], datetime],
        lobby: bool,
        report_events: ReportEvents | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.lobby = lobby
        """CALL_PAGE_LOBBY: participants below plus wait until a plus participant admits them."""
        self.report_events = report_events

    async def get(self, room: str) -> CallState:
        found = await self.storage.get(CALL_KEY + room)
        return CallState() if found is None else CallState.of(found.document)

    async def ended(self, room: str) -> bool:
        return (await self.get(room)).ended_at is not None

    async def delete(self, room: str) -> None:
        await self.storage.delete(CALL_KEY + room)

    async def enter(self, seat: CallSeat, asked_again: bool) -> Entry:
        """Whether the seat's page may have its Janus token now. `asked_again`: the page was
        told it waits (a fresh request is a new knock, and forgets an earlier refusal)."""
        user, now = seat.me.provider_user_id, self.clock()
        if not self.lobby or seat.me.is_admin:
            return "enter"

        def change(state: CallState) -> tuple[tuple[Entry, bool], bool]:
            if state.ended_at is not None:
                return ("ended", False), False
            if user in state.admitted:
                return ("enter", False), False
            knocked = state.waiting.get(user)
            if knocked is not None and knocked[1] < _millis(now - KNOCK_TTL) and not asked_again:
                knocked = None  # a page opened again long after its last: a new knock
            if knocked is not None:
                stale = knocked[1] < _millis(now - SEEN_EVERY)
                state.waiting[user] = (knocked[0], _millis(now))
                return (Wait(knocked[0]), False), stale
            if asked_again and user in state.declined:
                return ("declined", False), False
            if user in state.declined:
                state.declined.remove(user)
            state.waiting[user] = (page_time(now), _millis(now))
            return (Wait(page_time(now)), True), True

        room = seat.credential.room_id
        entry, knocked = await self._update(room, "let a participant knock", change)
        if knocked:
            await self._report(room, now, (PARTICIPANT_WAITING, user, None))
        return entry

    async def decide(self, seat: CallSeat, user: str, decision: Decision) -> bool:
        """A plus participant admits or declines `user`; False when they no longer wait."""
        now, room = self.clock(), seat.credential.room_id

        def change(state: CallState) -> tuple[bool, bool]:
            if state.ended_at is not None or user not in dict(state.knocks(now)):
                return False, False
            del state.waiting[user]
            if decision == "admit" and user not in state.admitted:
                state.admitted.append(user)
            if decision == "decline" and user not in state.declined:
                state.declined.append(user)
            return True, True

        if not await self._update(room, f"{decision} a waiting participant", change):
            return False
        kind = PARTICIPANT_ADMITTED if decision == "admit" else PARTICIPANT_DECLINED
        await self._report(room, now, (kind, user, seat.me.provider_user_id))
        return True

    async def withdraw(self, seat: CallSeat) -> None:
        """The seat's waiting page left or closed: its knock is gone at once (nothing to do
        when it does not wait)."""
        user = seat.me.provider_user_id

        def change(state: CallState) -> tuple[None, bool]:
            return None, state.waiting.pop(user, None) is not None

        await self._update(seat.credential.room_id, "withdraw a knock", change)

    async def end(self, room: str) -> bool:
        """Record the call ended by its host (no knock left); False when it already was."""
        now = self.clock()

        def change(state: CallState) -> tuple[bool, bool]:
            if state.ended_at is not None:
                return False, False
            state.ended_at, state.end_reason, state.waiting = page_time(now), ENDED_BY_HOST, {}
            return True, True

        return await self._update(room, "end a call", change)

    async def ended_now(self, room: str) -> None:
        """The core told the call ended (its room destroyed: every page disconnected)."""
        await self._report(room, self.clock(), (CALL_ENDED, None, None))

    async def _report(
        self, room: str, now: datetime, *moments: tuple[str, str | None, str | None]
    ) -> None:
        """Tell the core (which records them and sends them out); a failure there costs the
        events, never the call."""
        if self.report_events is None:
            return
        try:
            await self.report_events([ProviderEvent(k, room, now, u, by=b) for k, u, b in moments])
        except Exception:
            log.warning("janus room %s: the core did not take its events", room, exc_info=True)

    async def _update(
        self, room: str, operation: str, change: Callable[[CallState], tuple[R, bool]]
    ) -> R:
        """Read the document, let `change` decide (it edits the state and says whether to
        write), write with compare-and-set (creating it when absent); redo on a conflict."""
        key = CALL_KEY + room
        for _ in range(MAX_ATTEMPTS):
            found = await self.storage.get(key)
            state = CallState() if found is None else CallState.of(found.document)
            result, write = change(state)
            if not write:
                return result
            try:
                await self.storage.put(
                    key, state.document(), None if found is None else found.version
                )
            except VersionConflict:
                continue
            return result
        raise ProviderError(NAME, operation, "unreachable", "the call kept changing; retry")


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
