"""A participant's link revoked, or the participant removed (issue 30), in Janus.

The call page's shared seat check (`check_seat`) already refuses their earlier links on every
replica: no page of theirs loads, and none gets a Janus token (a removed participant's links
all answer `removed`). What is left is Janus's part, for pages already in the call:

- the room's `allowed` list stops holding their tokens of earlier generations (a token names
  its participant and, after a revocation, its link generation: `tokens.py`), so Janus
  itself refuses those tokens from now on; their new link's page gets a new token, added as
  any page's is;
- their pages in the room are kicked (`kick`, by Janus participant id): Janus hangs them up
  at once, whichever replica asked, and tells the others they left. The participant of a
  Janus id is the one the event handler recorded for its feed (from the token it joined
  with, `events.py`), else the display the page gave (the provider user id).

Every request is safe to repeat: a retry of the revocation removes and kicks again (a token
already gone, a participant already left are no error). A room Janus forgot (a restart) holds
no one and no token: nothing to do. The page is told nothing by teleconsult: kicked, its
transport asks its info again and shows the ending page it gets (revoked or removed).
Tokens are credentials: never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from teleconsult.plugin import ProviderStorage, Revocation

from .client import NO_SUCH_ROOM, JanusClient, VideoroomError, field_of, refused
from .tokens import generation_of, participant_mark

NO_SUCH_FEED = 428
NONE_ALLOWED = "teleconsult.none"
"""Removed from `allowed` to read the list (Janus answers with it): no token is this."""


@dataclass(frozen=True)
class Room:
    """A videoroom of ours: its name (the provider room id), number and secret."""

    name: str
    number: int
    secret: str = field(repr=False)


async def revoke(
    client: JanusClient, storage: ProviderStorage, room: Room, revocation: Revocation
) -> None:
    """Their earlier tokens out of `allowed`, then their pages kicked."""
    try:
        await _disallow(client, room, revocation)
        for feed in await feeds_of(client, storage, room, revocation.provider_user_id):
            await _kick(client, room, feed)
    except _Forgotten:
        return


async def participants(
    client: JanusClient, storage: ProviderStorage, room: Room
) -> list[tuple[int, str]]:
    """Who is in the room now: each Janus participant id with its provider user id."""
    operation = "list a room's participants"
    try:
        answer = await client.videoroom(
            operation, {"request": "listparticipants", "room": room.number}
        )
    except VideoroomError as error:
        if error.code == NO_SUCH_ROOM:
            raise _Forgotten() from None
        raise refused(operation, error) from None
    recorded = {
        found.key.rpartition("/")[2]: str(found.document["user"])
        for found in await storage.find(f"feed/{room.name}/")
    }
    present = field_of(operation, answer, "participants", list)
    return [
        (p["id"], recorded.get(str(p["id"]), str(p.get("display", ""))))
        for p in present
        if isinstance(p, dict) and isinstance(p.get("id"), int)
    ]


async def feeds_of(
    client: JanusClient, storage: ProviderStorage, room: Room, user: str
) -> list[int]:
    return [feed for feed, whose in await participants(client, storage, room) if whose == user]


class _Forgotten(Exception):
    """Janus does not know the room (it restarted): no one in it, no token allowed."""


async def _disallow(client: JanusClient, room: Room, revocation: Revocation) -> None:
    operation = "revoke a participant's token"
    body: dict[str, object] = {
        "request": "allowed",
        "room": room.number,
        "secret": room.secret,
        "action": "remove",
        "allowed": [NONE_ALLOWED],
    }
    allowed = field_of(operation, await _ask(client, operation, body), "allowed", list)
    mark = participant_mark(room.name, revocation.provider_user_id)
    revoked = [
        token
        for token in allowed
        if isinstance(token, str)
        and mark in token.partition(":")[0].split(",")
        and generation_of(token) < revocation.generation
    ]
    if revoked:
        await _ask(client, operation, {**body, "allowed": revoked})


async def _kick(client: JanusClient, room: Room, feed: int) -> None:
    operation = "kick a participant"
    body = {"request": "kick", "room": room.number, "secret": room.secret, "id": feed}
    try:
        await _ask(client, operation, body)
    except _Gone:
        return  # left meanwhile


class _Gone(Exception):
    """The participant left before the kick."""


async def _ask(client: JanusClient, operation: str, body: dict[str, object]) -> dict[str, Any]:
    try:
        return await client.videoroom(operation, body)
    except VideoroomError as error:
        if error.code == NO_SUCH_ROOM:
            raise _Forgotten() from None
        if error.code == NO_SUCH_FEED:
            raise _Gone() from None
        raise refused(operation, error) from None
