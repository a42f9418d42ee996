"""Who a link lets in, and the Janus token a page gets once it may enter.

The check is the call page's, shared with `webrtc` (`check_seat`), then, as `webrtc`'s, that
the call was not ended for everyone (`lobby.py`). A page that may enter (its lobby passed)
gets its Janus token (`tokens.participant_token`, `exp` the credential's own end, so bounded
by the consultation's window), and the token is added to the room's `allowed` list: Janus
then lets in that page, and only pages teleconsult let in.
"""

from __future__ import annotations

from teleconsult.plugin import CallRefusal, CallSeat, ProviderError, check_seat

from .client import NO_SUCH_ROOM, VideoroomError
from .provider import NAME, ROOM_KEY, JanusVideo, room_number
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
    harmless: Janus keeps one of each). A room Janus forgot (it restarted: rooms made through
    its API live in its memory) is made again first, under its id and secret, for the
    consultation the seat was just read from; every page that comes back adds its token.
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
    try:
        await _allow(provider, room, token)
    except VideoroomError as error:
        if error.code != NO_SUCH_ROOM:
            raise _refused(error) from None
        if not await provider.make_room(room, len(seat.roster.participants)):
            return None
        try:
            await _allow(provider, room, token)
        except VideoroomError as again:
            raise _refused(again) from None
    return token


async def _allow(provider: JanusVideo, room: str, token: str) -> None:
    operation = "allow a participant"
    stored = await provider.storage.get(ROOM_KEY + room)
    if stored is None:
        raise ProviderError(NAME, operation, "bad_answer", "the room's secret is not stored")
    body = {
        "request": "allowed",
        "room": room_number(operation, room),
        "secret": stored.document["secret"],
        "action": "add",
        "allowed": [token],
    }
    await provider.client.videoroom(operation, body)


def _refused(error: VideoroomError) -> ProviderError:
    reason = f"videoroom error {error.code}: {error.reason[:200]}"
    return ProviderError(NAME, "allow a participant", "bad_answer", reason)
