"""Who a link lets in, and the Janus token a page gets once it may enter.

The check is the call page's, shared with `webrtc` (`check_seat`), then, as `webrtc`'s, that
the call was not ended for everyone (`lobby.py`). A page that may enter (its lobby passed)
gets its Janus token (`tokens.participant_token`, `exp` the credential's own end, so bounded
by the consultation's window), and the token is added to the room's `allowed` list: Janus
then lets in that page, and only pages teleconsult let in.
"""

from __future__ import annotations

from teleconsult.plugin import CallRefusal, CallSeat, check_seat

from . import repair
from .client import NO_SUCH_ROOM, VideoroomError, refused
from .provider import JanusVideo
from .tokens import participant_token


async def admit(provider: JanusVideo, text: str) -> CallSeat | CallRefusal:
    """The page's link opens its call now: its seat (`seated`), and the call not ended."""
    found = await seated(provider, text)
    if isinstance(found, CallSeat) and await provider.calls.ended(found.credential.room_id):
        return CallRefusal("ended", 410, found.language)
    return found


async def seated(provider: JanusVideo, text: str) -> CallSeat | CallRefusal:
    """The shared checks of the call page's links (`check_seat`): nothing of Janus's. Alone,
    for ending the call (a retry after a failure ends it again)."""
    catalogs = provider.call_page.catalogs
    return await check_seat(provider.signer, text, provider.clock(), provider.roster, catalogs)


async def janus_token(provider: JanusVideo, seat: CallSeat) -> str | None:
    """The participant's token, added to their room's `allowed` list (adding it again is
    harmless: Janus keeps one of each), and the room recorded as live (`repair.py`). A room
    Janus forgot (it restarted: rooms made through its API live in its memory) and the
    reconciler has not made again yet is made again here, as the reconciler makes it: its
    id, its secret and the tokens of everyone entitled, so the other pages get in too.
    None: the call was ended for everyone meanwhile (its room is not made again)."""
    room = seat.credential.room_id
    credential = seat.credential
    token = participant_token(
        provider.options.token_secret,
        credential.expires_at,
        room,
        seat.me.provider_user_id,
        credential.generation,
    )
    await repair.remember(
        provider.storage, room, credential.teleconsultation_id, credential.expires_at,
        provider.clock(),
    )  # fmt: skip
    try:
        await provider.allow(room, [token])
    except VideoroomError as error:
        if error.code != NO_SUCH_ROOM:
            raise refused("allow a participant", error) from None
        if not await repair.make_again(provider, seat.roster, room, credential.expires_at):
            return None
    return token
