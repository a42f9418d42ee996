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
  or left, the call ended). The replica serving the peer takes them (`take`).

A peer whose heartbeat is older than the presence time-to-live is gone (its
replica died or lost the store): the next join or heartbeat in the room drops
it and tells the others.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from teleconsult.plugin import (
    CALL_ENDED,
    CALL_STARTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    ProviderError,
    ProviderEvent,
    ProviderStorage,
    ReportEvents,
    RoomSpec,
    VersionConflict,
    gather_all,
)

log = logging.getLogger("teleconsult.webrtc")

NAME = "webrtc"
ROOM_PREFIX = "room/"
LEGACY_USER_PREFIX = "user/"
"""Earlier versions kept a document per user there; the provider deletes them as it starts."""
MAX_PARTICIPANTS = 4
"""A full mesh: each browser sends its media to every other one, so four is the most a
home connection carries."""
MESSAGE_TTL = timedelta(minutes=1)
"""A signaling message not taken within a minute is useless: its peer is gone."""
MAX_ATTEMPTS = 20
"""Compare-and-set attempts on one room document before giving up (503)."""

R = TypeVar("R")


@dataclass
class Presence:
    user: str
    since: str
    """When this connection joined (ISO 8601, UTC)."""
    seen: int
    """Its last heartbeat, epoch milliseconds."""


@dataclass
class RoomState:
    participants: dict[str, bool]
    """Provider user id -> whether they are the room's admin."""
    duration_seconds: int | None
    live: bool
    recording: str
    created_at: str
    started_at: str | None = None
    """When two participants were first connected at once."""
    ended_at: str | None = None
    end_reason: str | None = None
    """`ended_by_host` or `cancelled`."""
    peers: dict[str, Presence] = field(default_factory=dict)
    """Connected peers by peer id, in the order they joined."""

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RoomState:
        return cls(
            participants={str(user): bool(admin) for user, admin in document["participants"]},
            duration_seconds=document["durationSeconds"],
            live=bool(document["live"]),
            recording=str(document["recording"]),
            created_at=str(document["createdAt"]),
            started_at=document["startedAt"],
            ended_at=document["endedAt"],
            end_reason=document["endReason"],
            peers={
                str(peer): Presence(str(user), str(since), int(seen))
                for peer, user, since, seen in document["peers"]
            },
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "participants": [[user, admin] for user, admin in self.participants.items()],
            "durationSeconds": self.duration_seconds,
            "live": self.live,
            "recording": self.recording,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
            "peers": [[peer, p.user, p.since, p.seen] for peer, p in self.peers.items()],
        }

    def drop_stale(self, oldest_heartbeat: int, keep: str | None = None) -> list[str]:
        """Remove the peers whose last heartbeat is older than `oldest_heartbeat`; their ids."""
        stale = [
            peer
            for peer, presence in self.peers.items()
            if presence.seen < oldest_heartbeat and peer != keep
        ]
        for peer in stale:
            del self.peers[peer]
        return stale


@dataclass(frozen=True)
class Peer:
    id: str
    user: str


@dataclass(frozen=True)
class Joined:
    peers: tuple[Peer, ...]
    """The peers already there, in the order they joined: the newcomer offers to each."""
    replaced: tuple[str, ...] = ()
    """The participant's own older connection, if still there: it is closed."""
    stale: tuple[str, ...] = ()
    """Peers whose heartbeat stopped, removed by this join."""


@dataclass(frozen=True)
class Refused:
    why: Literal["gone", "ended", "full", "not_invited"]
    end_reason: str | None = None


@dataclass(frozen=True)
class Beat:
    """What a heartbeat found: the peer is still in (`ok`), or the call is over for it."""

    outcome: Literal["ok", "ended", "gone", "evicted"]
    end_reason: str | None = None


def seat(state: RoomState, peer: Peer, now: datetime, oldest_heartbeat: int) -> Joined | Refused:
    """The rule for a join, applied to the room as read: the participant's own older
    connection and stale peers make way; a full or ended room refuses."""
    if state.ended_at is not None:
        return Refused("ended", state.end_reason)
    if peer.user not in state.participants:
        return Refused("not_invited")
    replaced = tuple(other for other, p in state.peers.items() if p.user == peer.user)
    for other in replaced:
        del state.peers[other]
    stale = tuple(state.drop_stale(oldest_heartbeat))
    if len(state.peers) >= MAX_PARTICIPANTS:
        return Refused("full")
    others = tuple(Peer(other, p.user) for other, p in state.peers.items())
    state.peers[peer.id] = Presence(peer.user, iso(now), millis(now))
    if state.started_at is None and len(state.peers) >= 2:
        state.started_at = iso(now)
    return Joined(others, replaced, stale)


class Rooms:
    """The room documents and mailboxes of one provider, through its `ProviderStorage`."""

    def __init__(
        self,
        storage: ProviderStorage,
        clock: Callable[[], datetime],
        presence_ttl: timedelta,
        report_events: ReportEvents | None = None,
    ) -> None:
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

    async def join(self, room_id: str, peer: Peer) -> Joined | Refused:
        now = self.clock()

        def change(state: RoomState) -> tuple[tuple[Joined | Refused, list[str], bool], bool]:
            users, was_started = _users(state), state.started_at is not None
            outcome = seat(state, peer, now, self._oldest_heartbeat(now))
            stale = [users[p] for p in outcome.stale] if isinstance(outcome, Joined) else []
            started = not was_started and state.started_at is not None
            return (outcome, stale, started), isinstance(outcome, Joined)

        found = await self._update(room_id, "let a participant join", change)
        if found is None:
            return Refused("gone")
        outcome, stale_users, started = found
        if isinstance(outcome, Joined):
            await self._report(
                room_id,
                now,
                *((PARTICIPANT_LEFT, user) for user in stale_users),
                (PARTICIPANT_JOINED, peer.user),
                *([(CALL_STARTED, None)] if started else []),
            )
            arrived = {"type": "peer-joined", "peer": peer.id, "user": peer.user}
            gone = self._left(outcome.replaced + outcome.stale)
            await self._tell(outcome.replaced, {"type": "replaced"})
            await self._tell([other.id for other in outcome.peers], *gone, arrived)
        return outcome

    async def leave(self, room_id: str, peer_id: str) -> None:
        now = self.clock()

        def change(state: RoomState) -> tuple[tuple[list[str], str | None], bool]:
            gone = state.peers.pop(peer_id, None)
            return ((list(state.peers), gone.user) if gone else ([], None)), gone is not None

        remaining, user = await self._update(room_id, "let a participant leave", change) or (
            [],
            None,
        )
        await self._tell(remaining, *self._left([peer_id]))
        if user is not None:
            await self._report(room_id, now, (PARTICIPANT_LEFT, user))

    async def heartbeat(self, room_id: str, peer_id: str) -> Beat:
        """Say the peer is still connected; drop the peers whose replica stopped saying so."""
        now = self.clock()

        def change(state: RoomState) -> tuple[tuple[Beat, list[str], list[str], list[str]], bool]:
            if state.ended_at is not None:
                return (Beat("ended", state.end_reason), [], [], []), False
            presence = state.peers.get(peer_id)
            if presence is None:
                return (Beat("evicted"), [], [], []), False
            presence.seen = millis(now)
            users = _users(state)
            stale = state.drop_stale(self._oldest_heartbeat(now), keep=peer_id)
            return (Beat("ok"), stale, [users[p] for p in stale], list(state.peers)), True

        found = await self._update(room_id, "keep a participant in a room", change)
        if found is None:
            return Beat("gone")
        beat, stale, stale_users, remaining = found
        await self._tell(remaining if stale else [], *self._left(stale))
        await self._report(room_id, now, *((PARTICIPANT_LEFT, user) for user in stale_users))
        return beat

    async def end(self, room_id: str, reason: str, by: str | None = None) -> None:
        """End the call for everyone: each connected peer (but `by`) is told, and the room
        refuses joins from now on."""
        now = self.clock()

        def change(state: RoomState) -> tuple[tuple[list[str], bool], bool]:
            if state.ended_at is not None:
                return ([], False), False
            peers = [peer for peer in state.peers if peer != by]
            started = state.started_at is not None
            state.ended_at, state.end_reason, state.peers = iso(now), reason, {}
            return (peers, started), True

        told, ended_a_call = await self._update(room_id, "end a call", change) or ([], False)
        await self._tell(told, {"type": "ended", "reason": reason})
        if ended_a_call:
            await self._report(room_id, now, (CALL_ENDED, None))

    async def post(self, peer_id: str, message: dict[str, Any]) -> None:
        await self.storage.post(peer_id, message, MESSAGE_TTL)

    async def take(self, peer_id: str) -> list[dict[str, Any]]:
        return await self.storage.take(peer_id)

    def describe(self, state: RoomState) -> dict[str, object]:
        """The room for GET's `details`, in camelCase: who is connected now and since when."""
        oldest = self._oldest_heartbeat(self.clock())
        connected = [
            {"userId": p.user, "since": p.since} for p in state.peers.values() if p.seen >= oldest
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
            "durationInSeconds": state.duration_seconds,
            "live": state.live,
            "recording": state.recording,
            "maxParticipants": MAX_PARTICIPANTS,
        }

    async def _report(self, room_id: str, now: datetime, *moments: tuple[str, str | None]) -> None:
        """Tell the core (which records them and sends them out); a failure there costs the
        events, never the call."""
        if self.report_events is None or not moments:
            return
        try:
            await self.report_events(
                [ProviderEvent(kind, room_id, now, user) for kind, user in moments]
            )
        except Exception:
            log.warning("room %s: the core did not take its events", room_id, exc_info=True)

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


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
