"""A page taking its place back after its WebSocket dropped (a deploy, a replica gone, a
network blip): the rule, pure, no I/O.

The page joins again with `resume` (its peer id). While the room still lists that peer for
the same participant, the page is the same page: same peer id, same seat, no `peer-left` nor
`peer-joined` for the others, whose peer connections (and media) carry on. What was posted to
its mailbox meanwhile is delivered by the new connection. Only when the room no longer lists
it (its presence expired, or it left) does the page join afresh, with a new id; when the same
participant's newer page holds the seat, this one was replaced and stays closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .state import Knock, Peer, Refused, RoomState, millis


@dataclass(frozen=True)
class Resumed:
    """The page has its seat (or its place in the lobby) back, under its own peer id."""

    peers: tuple[Peer, ...]
    """The others seated now, in the order they joined (none while waiting)."""
    waiting: bool
    """Still in the lobby: nothing is relayed until a plus participant admits it."""
    knocks: tuple[Knock, ...] = ()
    """Who waits in the lobby, for a plus participant."""


def reseat(
    state: RoomState, peer: Peer, now: datetime
) -> Resumed | Refused | Literal["replaced"] | None:
    """The rule for a resume, applied to the room as read (the presence's heartbeat is
    refreshed): None when the page must join afresh."""
    if state.ended_at is not None:
        return Refused("ended", state.end_reason)
    if peer.user not in state.participants:
        return Refused("not_invited")
    if peer.generation < state.generations.get(peer.user, 0):  # its link revoked meanwhile
        return Refused("revoked", "link_revoked")
    seated, waiting = state.peers.get(peer.id), state.waiting.get(peer.id)
    presence = seated or waiting
    if presence is not None and presence.user != peer.user:
        return None  # another participant's seat: never theirs to take
    if presence is None:
        newer = any(p.user == peer.user for p in (*state.peers.values(), *state.waiting.values()))
        return "replaced" if newer else None
    presence.seen = millis(now)
    if waiting is not None:
        return Resumed((), waiting=True)
    others = tuple(Peer(other, p.user) for other, p in state.peers.items() if other != peer.id)
    knocks = state.knocks() if state.participants[peer.user] else ()
    return Resumed(others, waiting=False, knocks=knocks)
