"""Rooms, who is in them, and the signaling mailboxes: all in the provider's storage.

Nothing here lives in a replica's memory, so every replica sees the same rooms
and any replica may serve any participant. In the `webrtc` namespace:

- `room/<room id>`: a room document (`RoomState`): its participants and who is
  the admin, when it was created, when its call started and ended, and the
  peers connected now (`peers`: per connection, the participant, since when,
  and the time of its last heartbeat). Every change is a compare-and-set on
  this one document, redone on a conflict: who gets a seat, the capacity and
  the end of the call are decided by whichever write lands first.
- mailboxes, one per connected peer (its id): what the other peers send it
  (offer, answer, ICE candidates) and what happens in the room (a peer joined
  or left, the call ended). The replica's hub (`hub.py`) delivers a message for
  a page it serves in memory, and takes the others' mailboxes for its pages.

A peer that no replica says it serves within the presence time-to-live is gone
(its replica died or lost the store): the next join in the room, or the hub of
a replica serving one of its peers, drops it and tells the others. A page whose
WebSocket dropped while its seat was kept (its replica stopping) takes it back with
`resume` (resume.py), as the same peer, on whichever replica it comes back to.

`post` and `tell_participant` are how anything reaches the pages: a page this replica
serves at once, one on another replica within its poll interval.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from teleconsult.plugin import (
    CALL_ENDED,
    CALL_STARTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    PARTICIPANT_WAITING,
    ProviderError,
    ProviderEvent,
    ProviderStorage,
    ReportEvents,
    RoomSpec,
    VersionConflict,
    gather_all,
)

from .hub import MESSAGE_TTL, Hub
from .resume import Resumed, reseat
from .state import (
    MAX_PARTICIPANTS,
    Joined,
    Knock,
    Peer,
    Presence,
    Refused,
    RoomState,
    Waiting,
    iso,
    millis,
    seat,
)

__all__ = [
    "MAX_PARTICIPANTS",
    "MESSAGE_TTL",
    "Joined",
    "Knock",
    "Peer",
    "Presence",
    "Refused",
    "RoomState",
    "Rooms",
    "Waiting",
    "iso",
    "millis",
    "new_room_id",
    "seat",
]

log = logging.getLogger("teleconsult.webrtc")

NAME = "webrtc"
ROOM_PREFIX = "room/"
LEGACY_USER_PREFIX = "user/"
"""Earlier versions kept a document per user there; the provider deletes them as it starts."""
MAX_ATTEMPTS = 20
"""Compare-and-set attempts on one room document before giving up (503)."""

R = TypeVar("R")
Moment = tuple[str, str | None, str | None]
"""An event to report: its kind, the participant, and who decided (the lobby's)."""


class Rooms:
    """The room documents and mailboxes of one provider, through its `ProviderStorage`."""

    def __init__(
        self,
        storage: ProviderStorage,
        clock: Callable[[], datetime],
        presence_ttl: timedelta,
        hub: Hub,
        report_events: ReportEvents | None = None,
        lobby: bool = False,
    ) -> None:
        self.hub = hub
        """Reaches the pages: in memory on this replica, through the store on the others."""
        hub.sweep = self.sweep
        self.lobby = lobby
        """`CALL_PAGE_LOBBY`: participants below plus wait until a plus participant admits them."""
        self.storage = storage
        self.clock = clock
        self.presence_ttl = presence_ttl
        self.report_events = report_events
        """Tells the core who joined and left, and when the call started and ended."""

    async def create(self, room_id: str, spec: RoomSpec) -> None:
        state = RoomState(
            participants={p.provider_user_id: p.is_admin for p in spec.participants},
            duration_seconds=spec.duration_seconds,
            live=spec.live,
            recording=spec.recording,
            created_at=iso(self.clock()),
        )
        await self.storage.put(ROOM_PREFIX + room_id, state.to_document(), None)

    async def get(self, room_id: str) -> RoomState | None:
        found = await self.storage.get(ROOM_PREFIX + room_id)
        return None if found is None else RoomState.from_document(found.document)

    async def ids(self) -> set[str]:
        return {found.key[len(ROOM_PREFIX) :] for found in await self.storage.find(ROOM_PREFIX)}

    async def delete(self, room_id: str) -> None:
        """End the call for whoever is connected, then remove the room: from the first
        write on, no one can join it, on any replica."""
        await self.end(room_id, "cancelled")
        await self.storage.delete(ROOM_PREFIX + room_id)

    async def join(self, room_id: str, peer: Peer) -> Joined | Waiting | Refused:
        now, alive = self.clock(), await self.hub.alive()

        def change(state: RoomState) -> tuple[tuple[Joined | Waiting | Refused, Any], bool]:
            users, was_started = _users(state), state.started_at is not None
            outcome = seat(state, peer, now, self._oldest_heartbeat(now), self.lobby, alive)
            stale = [] if isinstance(outcome, Refused) else [users[p] for p in outcome.stale]
            started = not was_started and state.started_at is not None
            seen = (stale, started, state.admins(but=peer.id), list(state.peers))
            return (outcome, seen), not isinstance(outcome, Refused)

        found = await self._update(room_id, "let a participant join", change)
        if found is None:
            return Refused("gone")
        outcome, (stale_users, started, admins, seated) = found
        if isinstance(outcome, Refused):
            return outcome
        gone = self._left(outcome.replaced + outcome.stale)
        await self._tell(outcome.replaced, {"type": "replaced"})
        withdrawn = [{"type": "knock-withdrawn", "peer": p} for p in outcome.withdrawn]
        if isinstance(outcome, Joined):
            arrival = {"type": "peer-joined", "peer": peer.id, "user": peer.user}
            await self._tell([other.id for other in outcome.peers], *gone, arrival)
            await self._tell(admins, *withdrawn)
        else:
            knock = Knock(peer.id, peer.user, outcome.since).message()
            await self._tell([p for p in seated if p not in admins], *gone)
            await self._tell(admins, *gone, *withdrawn, knock)
        # Recorded once the peers were told: a join reaches them without waiting for it.
        await self._report(
            room_id,
            now,
            *((PARTICIPANT_LEFT, user) for user in stale_users),
            (PARTICIPANT_JOINED if isinstance(outcome, Joined) else PARTICIPANT_WAITING, peer.user),
            *([(CALL_STARTED, None)] if started else []),
        )
        return outcome

    async def resume(
        self, room_id: str, peer: Peer
    ) -> Resumed | Refused | Literal["replaced"] | None:
        """A page whose WebSocket dropped takes its seat back under its own id (`reseat`);
        nobody is told: the others' peer connections carry on. None: join afresh."""
        now = self.clock()

        Outcome = tuple[Resumed | Refused | Literal["replaced"] | None]

        def change(state: RoomState) -> tuple[Outcome, bool]:
            outcome = reseat(state, peer, now)
            return (outcome,), isinstance(outcome, Resumed)

        found = await self._update(room_id, "let a participant resume", change)
        return Refused("gone") if found is None else found[0]

    async def leave(self, room_id: str, peer_id: str) -> None:
        now = self.clock()

        def change(state: RoomState) -> tuple[tuple[list[str], str | None, bool], bool]:
            if (waited := state.waiting.pop(peer_id, None)) is not None:
                return (state.admins(), waited.user, True), True
            gone = state.peers.pop(peer_id, None)
            seen = (list(state.peers), gone.user, False) if gone else ([], None, False)
            return seen, gone is not None

        found = await self._update(room_id, "let a participant leave", change)
        remaining, user, waited = found or ([], None, False)
        if waited:  # nobody but the plus participants knew of them
            await self._tell(remaining, {"type": "knock-withdrawn", "peer": peer_id})
        else:
            if user is not None:  # recorded first: this replica's pages hear of it at once
                await self._report(room_id, now, (PARTICIPANT_LEFT, user))
            await self._tell(remaining, *self._left([peer_id]))
        if waited or user is not None:
            # An old connection that its replica saw close only now: were its page back on
            # another replica meanwhile (resumed), that page is told to join afresh.
            await self.storage.post(peer_id, {"type": "evicted"}, MESSAGE_TTL)

    async def sweep(self, room_id: str, alive: set[str]) -> None:
        """Drop the peers and knocks no replica serves any more, and tell the others; a
        dropped page that is in fact still open hears `evicted` (it reconnects)."""
        now = self.clock()

        Told = tuple[list[str], list[str], list[str], list[str], list[str]]

        def change(state: RoomState) -> tuple[Told, bool]:
            users, oldest = _users(state), self._oldest_heartbeat(now)
            stale = state.drop_stale(oldest, alive)
            knocks = state.drop_stale_waiting(oldest, alive)
            seen = (stale, [users[p] for p in stale], list(state.peers), state.admins(), knocks)
            return seen, bool(stale or knocks)

        found = await self._update(room_id, "drop the peers of a replica that stopped", change)
        if found is None:
            return
        stale, stale_users, remaining, admins, knocks = found
        await self._report(room_id, now, *((PARTICIPANT_LEFT, user) for user in stale_users))
        await self._tell(admins, *({"type": "knock-withdrawn", "peer": p} for p in knocks))
        await self._tell(remaining if stale else [], *self._left(stale))
        await self._tell([*stale, *knocks], {"type": "evicted"})

    async def end(self, room_id: str, reason: str, by: str | None = None) -> None:
        """End the call for everyone: each connected peer (but `by`) is told, and the room
        refuses joins from now on."""
        now = self.clock()

        def change(state: RoomState) -> tuple[tuple[list[str], bool], bool]:
            if state.ended_at is not None:
                return ([], False), False
            peers = [peer for peer in (*state.peers, *state.waiting) if peer != by]
            started = state.started_at is not None
            state.ended_at, state.end_reason, state.peers = iso(now), reason, {}
            state.waiting = {}
            return (peers, started), True

        told, ended_a_call = await self._update(room_id, "end a call", change) or ([], False)
        if ended_a_call:
            await self._report(room_id, now, (CALL_ENDED, None))
        await self._tell(told, {"type": "ended", "reason": reason})

    async def post(self, peer_id: str, message: dict[str, Any]) -> None:
        """To one page: at once on this replica, within a poll interval on another."""
        await self.hub.post(peer_id, message)

    async def tell_participant(self, room_id: str, user: str, message: dict[str, Any]) -> int:
        """To every page a participant has open in the room, seated or waiting, wherever
        they are served; how many."""
        state = await self.get(room_id)
        if state is None:
            return 0
        pages = [p for p, presence in (*state.peers.items(), *state.waiting.items())
                 if presence.user == user]  # fmt: skip
        await self._tell(pages, message)
        return len(pages)

    def describe(self, state: RoomState, alive: Collection[str]) -> dict[str, object]:
        """The room for GET's `details`, in camelCase: who is connected now and since when
        (`alive`: the peers the replicas say they serve)."""
        oldest = self._oldest_heartbeat(self.clock())
        connected = [
            {"userId": p.user, "since": p.since}
            for peer, p in state.peers.items()
            if p.seen >= oldest or peer in alive
        ]
        if state.ended_at is not None:
            status = "ended"
        elif len(connected) >= 2:
            status = "in_progress"
        elif connected:
            status = "waiting"
        else:
            status = "pending"
        return {
            "status": status,
            "creationDate": state.created_at,
            "startedAt": state.started_at,
            "endedAt": state.ended_at,
            "endReason": state.end_reason,
            "connected": connected,
            **({"waiting": self._waiting(state, oldest, alive)} if self.lobby else {}),
            "durationInSeconds": state.duration_seconds,
            "live": state.live,
            "recording": state.recording,
            "maxParticipants": MAX_PARTICIPANTS,
        }

    async def _report(
        self, room_id: str, now: datetime, *moments: tuple[str, str | None] | Moment
    ) -> None:
        """Tell the core (which records them and sends them out); a failure there costs the
        events, never the call. A moment is (kind, user) or (kind, user, by)."""
        if self.report_events is None or not moments:
            return
        try:
            await self.report_events(
                [
                    ProviderEvent(m[0], room_id, now, m[1], by=m[2] if len(m) > 2 else None)
                    for m in moments
                ]
            )
        except Exception:
            log.warning("room %s: the core did not take its events", room_id, exc_info=True)

    @staticmethod
    def _waiting(state: RoomState, oldest: int, alive: Collection[str]) -> list[dict[str, str]]:
        """Who waits in the lobby now, and since when (with CALL_PAGE_LOBBY only)."""
        return [
            {"userId": p.user, "since": p.since}
            for peer, p in state.waiting.items()
            if p.seen >= oldest or peer in alive
        ]

    def _oldest_heartbeat(self, now: datetime) -> int:
        return millis(now - self.presence_ttl)

    @staticmethod
    def _left(peers: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
        return [{"type": "peer-left", "peer": peer} for peer in peers]

    async def _tell(self, peers: list[str] | tuple[str, ...], *messages: dict[str, Any]) -> None:
        """Post `messages`, in order, to each of `peers` (concurrently across peers)."""

        async def to(peer: str) -> None:
            for message in messages:
                await self.post(peer, message)

        await gather_all(*(to(peer) for peer in peers))

    async def _update(
        self,
        room_id: str,
        operation: str,
        change: Callable[[RoomState], tuple[R, bool]],
    ) -> R | None:
        """Read the room, let `change` decide (it edits the state, and says whether to write),
        write with compare-and-set; redo on a conflict. None when there is no such room."""
        key = ROOM_PREFIX + room_id
        for _ in range(MAX_ATTEMPTS):
            found = await self.storage.get(key)
            if found is None:
                return None
            state = RoomState.from_document(found.document)
            result, write = change(state)
            if not write:
                return result
            try:
                await self.storage.put(key, state.to_document(), found.version)
            except VersionConflict:
                continue
            return result
        raise ProviderError(NAME, operation, "unreachable", "the room kept changing; retry")


def new_room_id() -> str:
    """A room's id, chosen before the room is made (the core writes it in the room's job
    first): 96 random bits."""
    return "webrtc-" + secrets.token_hex(12)


def _users(state: RoomState) -> dict[str, str]:
    """Each connected peer's participant."""
    return {peer: presence.user for peer, presence in state.peers.items()}
