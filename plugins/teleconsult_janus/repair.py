"""Rooms Janus forgot, made again (`RoomRepair`): the same id, secret and allowed tokens.

Janus keeps the rooms made through its API in memory: a restart (a crash, an upgrade) loses
them with their `allowed` lists, and the pages in them drop and reconnect. Every room a page
was let into is recorded in the provider's storage (`live/<room>`: its consultation and the
end of its tokens, the record expiring then). At every reconciler pass, on every replica,
and at once when Janus's event handler says Janus started, the recorded rooms are compared
with Janus's list (one `list` with the admin key: private rooms too), and each missing one
whose consultation still holds it is created again: the same id and secret, and in `allowed`
the token of every participant entitled now (their current link generation, not removed),
computed again from the same inputs as admission did (`tokens.participant_token`). A page
that reconnects with the token it holds gets in without asking teleconsult.

A cancelled or replaced consultation's record is dropped and its room not made; an ended
one's record has expired (its tokens too). Two replicas at it at once both succeed: Janus
answers the second creation 427 (`make_room` takes it as made, then adds the tokens), and a
token added twice is kept once. Tokens are credentials: never logged.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from teleconsult.plugin import ProviderStorage, RoomRoster, VersionConflict

from .client import VideoroomError, field_of, refused
from .tokens import participant_token

if TYPE_CHECKING:
    from .provider import JanusVideo

LIVE_KEY = "live/"


async def remember(
    storage: ProviderStorage, room: str, consultation: str, expires_at: int, now: datetime
) -> None:
    """Record that a page was let into `room`, until its tokens end (written once: every
    later page's admission finds it there)."""
    until = datetime.fromtimestamp(expires_at, UTC)
    if until <= now:
        return
    document = {"consultation": consultation, "expiresAt": expires_at}
    with contextlib.suppress(VersionConflict):
        await storage.put(LIVE_KEY + room, document, None, until - now)


async def repair(video: JanusVideo) -> int:
    """Every recorded room Janus does not hold, made again when its consultation still holds
    it; how many were made."""
    live = await video.storage.find(LIVE_KEY)
    if not live:
        return 0  # no live call: Janus is not asked
    operation = "list the rooms"
    try:
        answer = await video.client.videoroom(
            operation, {"request": "list", "admin_key": video.options.admin_key}
        )
    except VideoroomError as error:
        raise refused(operation, error) from None
    present = {
        str(room.get("room"))
        for room in field_of(operation, answer, "list", list)
        if isinstance(room, dict)
    }
    made = 0
    for found in live:
        name = found.key.removeprefix(LIVE_KEY)
        if name in present:
            continue
        roster = await video.roster(str(found.document["consultation"]))
        if roster is None or roster.cancelled or roster.provider_room_id != name:
            await video.storage.delete(found.key)  # no longer a room of a consultation's
            continue
        if await make_again(video, roster, name, int(found.document["expiresAt"])):
            made += 1
        else:  # ended for everyone: never made again
            await video.storage.delete(found.key)
    return made


async def make_again(video: JanusVideo, roster: RoomRoster, name: str, expires_at: int) -> bool:
    """The room `name` as it was: its id, its secret, and the tokens of everyone entitled;
    False, and nothing made, when its call was ended for everyone."""
    tokens = [
        participant_token(
            video.options.token_secret, expires_at, name, p.provider_user_id, p.link_generation
        )
        for p in roster.participants
        if not p.blocked
    ]
    return await video.make_room(name, len(roster.participants), tokens)
