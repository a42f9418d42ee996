"""A participant's link revoked, or the participant removed (issue 30): refused and cut off.

- Every page load and WebSocket checks the credential's link generation against the
  participant's in the record (the call page's `check_seat`, shared with `janus`): a link
  of an earlier generation is `revoked` (410), any link of a removed participant `removed`
  (403).
- `revoke` ends the participant's live connections: on this replica at once; on every
  replica through the room document (it stops listing them, and refuses a join with an
  earlier generation from now on, so a connection admitted just before the revocation cannot
  take a seat after it) and their mailbox (`ended` with the reason, taken within the poll
  interval). The remaining pages are told `peer-left`, so they close their peer connections
  to them: a page that ignores its revocation loses the call anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from teleconsult.plugin import PARTICIPANT_LEFT, NotFound, Revocation, gather_all

from .rooms import Rooms, RoomState
from .signaling import Connection

ENDED_REASONS = {False: "link_revoked", True: "removed"}
"""What an `ended` message says to a page cut off, by whether its participant was removed."""


def user_of_peer(state: RoomState | None, peer: str) -> str | None:
    """The participant of a connection seated or waiting in the room, if it still is."""
    if state is None:
        return None
    presence = state.peers.get(peer) or state.waiting.get(peer)
    return None if presence is None else presence.user


def cannot_remove(provider: str) -> NotFound:
    """Built outside an app (no core to ask): the page's Remove leads nowhere."""
    return NotFound(f"The {provider} provider runs without the service's core: none to ask.")


async def revoke(rooms: Rooms, connections: Iterable[Connection], revocation: Revocation) -> None:
    reason = ENDED_REASONS[revocation.removed]
    for connection in list(connections):  # this replica's: at once
        if _cut_off(connection, revocation):
            connection.end(reason)
    await _remove_from_room(rooms, revocation, reason)


def _cut_off(connection: Connection, revocation: Revocation) -> bool:
    return (
        connection.room_id == revocation.provider_room_id
        and connection.user == revocation.provider_user_id
        and connection.generation < revocation.generation
    )


async def _remove_from_room(rooms: Rooms, revocation: Revocation, reason: str) -> None:
    """The room stops listing the participant's connections and refuses their earlier links;
    they hear `ended`, the others `peer-left` (and the core that they left). `ended` is posted
    before the room is written, so the page hears it (through the hub: at once on this replica)
    before anything the room's change causes, and ends with the reason rather than
    reconnecting to be refused."""
    room, user, generation = (
        revocation.provider_room_id,
        revocation.provider_user_id,
        revocation.generation,
    )
    ended = {"type": "ended", "reason": reason}
    told = _connections_of(await rooms.get(room), user)
    await _post(rooms, told, ended)

    def change(state: RoomState) -> tuple[tuple[list[str], list[str], list[str]], bool]:
        seated = [peer for peer, p in state.peers.items() if p.user == user]
        waiting = [peer for peer, p in state.waiting.items() if p.user == user]
        for peer in seated:
            del state.peers[peer]
        for peer in waiting:
            del state.waiting[peer]
        if user in state.admitted:
            state.admitted.remove(user)  # admitted again only by a plus participant's decision
        state.generations[user] = max(generation, state.generations.get(user, 0))
        return (seated, waiting, list(state.peers)), True

    found = await rooms._update(room, "revoke a participant's link", change)
    if found is None:
        return
    seated, waiting, remaining = found
    await _post(rooms, [p for p in (*seated, *waiting) if p not in told], ended)  # came meanwhile
    left = [{"type": "peer-left", "peer": p} for p in seated]
    withdrawn = [{"type": "knock-withdrawn", "peer": p} for p in waiting]
    await _post(rooms, remaining, *left, *withdrawn)
    if seated:
        await rooms._report(room, rooms.clock(), (PARTICIPANT_LEFT, user))


async def _post(rooms: Rooms, peers: list[str], *messages: dict[str, Any]) -> None:
    """Post `messages`, in order, to each of `peers`' mailboxes (the signaling's seam)."""

    async def to(peer: str) -> None:
        for message in messages:
            await rooms.post(peer, message)

    await gather_all(*(to(peer) for peer in peers))


def _connections_of(state: RoomState | None, user: str) -> list[str]:
    """The participant's connections in the room, seated or waiting."""
    if state is None:
        return []
    return [peer for peer, p in (*state.peers.items(), *state.waiting.items()) if p.user == user]
