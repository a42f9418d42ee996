"""A room document's state, and the rule for a join (`seat`), lobby included: pure, no I/O.

With the lobby on (`CALL_PAGE_LOBBY`), a participant below `plus` who was not admitted in
this call waits (`waiting`: per connection, like `peers`), takes no seat, and is told of
no one; a `plus` participant never waits and sees the knocks; a participant admitted once
(`admitted`) goes straight in when they join again, until the call ends.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

MAX_PARTICIPANTS = 4
"""A full mesh: each browser sends its media to every other one, so four is the most a
home connection carries."""


@dataclass
class Presence:
    user: str
    since: str
    """When this connection joined (ISO 8601, UTC)."""
    seen: int
    """When it joined (or, written by earlier versions, its last heartbeat): epoch
    milliseconds. After the presence time, only its replica's presence keeps it."""


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
    waiting: dict[str, Presence] = field(default_factory=dict)
    """Peers waiting in the lobby, by peer id, in the order they knocked."""
    admitted: list[str] = field(default_factory=list)
    """The participants a plus participant admitted in this call: they do not wait again."""
    generations: dict[str, int] = field(default_factory=dict)
    """Per participant whose link was revoked, the lowest link generation that still joins."""

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
            waiting={
                str(peer): Presence(str(user), str(since), int(seen))
                for peer, user, since, seen in document.get("waiting", [])
            },
            admitted=[str(user) for user in document.get("admitted", [])],
            generations={str(u): int(g) for u, g in document.get("generations", {}).items()},
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
            "waiting": [[peer, p.user, p.since, p.seen] for peer, p in self.waiting.items()],
            "admitted": self.admitted,
            **({"generations": self.generations} if self.generations else {}),
        }

    def drop_stale(self, oldest_heartbeat: int, alive: Collection[str] = ()) -> list[str]:
        """Remove the peers that joined before `oldest_heartbeat` and that no replica says it
        serves (not in `alive`); their ids."""
        stale = [
            peer
            for peer, presence in self.peers.items()
            if presence.seen < oldest_heartbeat and peer not in alive
        ]
        for peer in stale:
            del self.peers[peer]
        return stale

    def drop_stale_waiting(self, oldest_heartbeat: int, alive: Collection[str] = ()) -> list[str]:
        """The same for the lobby: a page no replica serves is not waiting."""
        stale = [
            peer
            for peer, presence in self.waiting.items()
            if presence.seen < oldest_heartbeat and peer not in alive
        ]
        for peer in stale:
            del self.waiting[peer]
        return stale

    def admins(self, but: str | None = None) -> list[str]:
        """The connected plus participants' peer ids: they are told of the knocks."""
        return [
            peer
            for peer, presence in self.peers.items()
            if self.participants.get(presence.user) and peer != but
        ]

    def knocks(self) -> tuple[Knock, ...]:
        return tuple(Knock(peer, p.user, p.since) for peer, p in self.waiting.items())


@dataclass(frozen=True)
class Peer:
    id: str
    user: str
    generation: int = 0
    """The link generation of the credential the connection was opened with."""


@dataclass(frozen=True)
class Knock:
    """Someone waiting in the lobby, as a plus participant's page shows them."""

    peer: str
    user: str
    since: str

    def message(self) -> dict[str, Any]:
        return {"type": "knock", "peer": self.peer, "user": self.user, "since": self.since}


@dataclass(frozen=True)
class Joined:
    peers: tuple[Peer, ...]
    """The peers already there, in the order they joined: the newcomer offers to each."""
    replaced: tuple[str, ...] = ()
    """The participant's own older connection, if still there: it is closed."""
    stale: tuple[str, ...] = ()
    """Peers whose heartbeat stopped, removed by this join."""
    waiting: tuple[Knock, ...] = ()
    """Who waits in the lobby, for a plus participant (nobody else is told)."""
    withdrawn: tuple[str, ...] = ()
    """Waiting peers that left the lobby with this join (their own older or stale ones)."""


@dataclass(frozen=True)
class Waiting:
    """The newcomer waits in the lobby: no seat, no peers, until a plus participant decides."""

    since: str
    replaced: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    withdrawn: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    why: Literal["gone", "ended", "full", "not_invited", "revoked"]
    end_reason: str | None = None


def seat(
    state: RoomState,
    peer: Peer,
    now: datetime,
    oldest_heartbeat: int,
    lobby: bool = False,
    alive: Collection[str] = (),
) -> Joined | Waiting | Refused:
    """The rule for a join, applied to the room as read: the participant's own older
    connection and stale peers (joined before `oldest_heartbeat`, not `alive`) make way; a
    full or ended room refuses; with the `lobby`, a participant below plus who was not
    admitted in this call waits."""
    if state.ended_at is not None:
        return Refused("ended", state.end_reason)
    if peer.user not in state.participants:
        return Refused("not_invited")
    if peer.generation < state.generations.get(peer.user, 0):  # revoked as it was joining
        return Refused("revoked", "link_revoked")
    replaced = tuple(other for other, p in state.peers.items() if p.user == peer.user)
    for other in replaced:
        del state.peers[other]
    withdrawn = [other for other, p in state.waiting.items() if p.user == peer.user]
    for other in withdrawn:
        del state.waiting[other]
    stale = tuple(state.drop_stale(oldest_heartbeat, alive))
    withdrawn += state.drop_stale_waiting(oldest_heartbeat, alive)
    presence = Presence(peer.user, iso(now), millis(now))
    admin = state.participants[peer.user]
    if lobby and not admin and peer.user not in state.admitted:
        if len(state.waiting) >= MAX_PARTICIPANTS:
            return Refused("full")
        state.waiting[peer.id] = presence
        return Waiting(presence.since, (*replaced, *withdrawn), stale, tuple(withdrawn))
    if len(state.peers) >= MAX_PARTICIPANTS:
        return Refused("full")
    others = tuple(Peer(other, p.user) for other, p in state.peers.items())
    state.peers[peer.id] = presence
    if state.started_at is None and len(state.peers) >= 2:
        state.started_at = iso(now)
    knocks = state.knocks() if admin else ()
    return Joined(others, (*replaced, *withdrawn), stale, knocks, tuple(withdrawn))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
