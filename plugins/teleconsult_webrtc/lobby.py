"""The lobby's decisions: a plus participant admits or declines someone waiting.

The decision is a compare-and-set on the room document, like every change: the waiting
peer takes a seat (and the participant is remembered as admitted until the call ends) or
leaves the lobby. The waiting page hears it through its mailbox, whichever replica serves
it (`admitted`, with the peers to offer to; `declined`); the others hear `peer-joined`,
the plus participants `knock-withdrawn`. Both are reported to the core (webhooks, audit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from teleconsult.plugin import (
    CALL_STARTED,
    PARTICIPANT_ADMITTED,
    PARTICIPANT_DECLINED,
    PARTICIPANT_JOINED,
)

from .rooms import Rooms
from .state import MAX_PARTICIPANTS, Presence, RoomState, iso, millis

Decision = Literal["admit", "decline"]


@dataclass(frozen=True)
class Decided:
    """What a decision changed: whom, the peers already seated, whether the call started."""

    user: str
    seated: tuple[tuple[str, str], ...]
    admins: tuple[str, ...]
    started: bool


async def decide(rooms: Rooms, room_id: str, by: str, peer_id: str, decision: Decision) -> bool:
    """Admit or decline `peer_id` on behalf of the plus participant connected as `by`; False
    when it changes nothing (no longer waiting, the room full or ended, `by` not plus)."""
    now = rooms.clock()

    def change(state: RoomState) -> tuple[Decided | None, bool]:
        decider = state.peers.get(by)
        waiting = state.waiting.get(peer_id)
        if state.ended_at or decider is None or waiting is None:
            return None, False
        if not state.participants.get(decider.user):
            return None, False
        if decision == "admit" and len(state.peers) >= MAX_PARTICIPANTS:
            return None, False
        del state.waiting[peer_id]
        seated = tuple((peer, p.user) for peer, p in state.peers.items())
        admins = tuple(state.admins())
        started = False
        if decision == "admit":
            state.peers[peer_id] = Presence(waiting.user, iso(now), millis(now))
            if waiting.user not in state.admitted:
                state.admitted.append(waiting.user)
            started = state.started_at is None and len(state.peers) >= 2
            state.started_at = state.started_at or (iso(now) if started else None)
        return Decided(waiting.user, seated, admins, started), True

    found = await rooms._update(room_id, f"{decision} a waiting participant", change)
    if found is None:
        return False
    decider = await _user_of(rooms, found, by)
    withdrawn = {"type": "knock-withdrawn", "peer": peer_id}
    # Recorded first: the pages hear of it at once when this replica serves them.
    if decision == "decline":
        await rooms._report(room_id, now, (PARTICIPANT_DECLINED, found.user, decider))
        await rooms.post(peer_id, {"type": "declined"})
        await rooms._tell(found.admins, withdrawn)
        return True
    await rooms._report(
        room_id,
        now,
        (PARTICIPANT_ADMITTED, found.user, decider),
        (PARTICIPANT_JOINED, found.user, None),
        *([(CALL_STARTED, None, None)] if found.started else []),
    )
    peers: list[Any] = [list(pair) for pair in found.seated]
    await rooms.post(peer_id, {"type": "admitted", "peers": peers})
    await rooms._tell(found.admins, withdrawn)
    arrival = {"type": "peer-joined", "peer": peer_id, "user": found.user}
    await rooms._tell([peer for peer, _ in found.seated], arrival)
    return True


async def _user_of(rooms: Rooms, decided: Decided, by: str) -> str | None:
    """The deciding plus participant's provider user id (it is seated: among `seated`)."""
    return next((user for peer, user in decided.seated if peer == by), None)
