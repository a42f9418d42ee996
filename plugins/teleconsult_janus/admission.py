"""Who a link lets in, and the Janus token a page gets once it may enter.

The check is `webrtc`'s: the credential signed by us, inside its window, for a consultation
that is not cancelled, whose room is still this one, and which names this participant; read
at every request, so a cancelled or replaced room's links stop working at once on every
replica. A page that may enter gets its Janus token (`tokens.participant_token`, `exp` the
credential's own end, so bounded by the consultation's window), and the token is added to
the room's `allowed` list: Janus then lets in that page, and only pages teleconsult let in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from teleconsult.plugin import (
    LinkCredential,
    ProviderError,
    RoomRoster,
    RosterEntry,
)

from .client import NO_SUCH_ROOM, VideoroomError
from .provider import NAME, ROOM_KEY, JanusVideo, room_number
from .tokens import participant_token


@dataclass(frozen=True)
class Seat:
    """A credential that opens its call now, with what it opens."""

    credential: LinkCredential
    roster: RoomRoster
    me: RosterEntry
    language: str | None


@dataclass(frozen=True)
class Refusal:
    """Why a credential opens nothing (an ending page's reason), its status and language."""

    why: str
    status: int
    language: str | None = None
    opens_at: datetime | None = None


async def admit(provider: JanusVideo, text: str) -> Seat | Refusal:
    credential = provider.signer.verify(text)
    if credential is None:
        return Refusal("invalid", 404)
    language = credential.language
    now = provider.clock().timestamp()
    if now < credential.opens_at:
        return Refusal("not_open", 403, language, datetime.fromtimestamp(credential.opens_at, UTC))
    if now >= credential.expires_at:
        return Refusal("expired", 410, language)
    roster = await provider.roster(credential.teleconsultation_id)
    me = None if roster is None else _entry(roster, credential.user_id)
    if roster is None or me is None:
        return Refusal("gone", 410, language)
    if roster.cancelled:
        return Refusal("cancelled", 410, language)
    if roster.provider_room_id != credential.room_id:
        return Refusal("gone", 410, language)
    return Seat(credential, roster, me, language)


async def janus_token(provider: JanusVideo, seat: Seat) -> str:
    """The participant's token, added to their room's `allowed` list (adding it again is
    harmless: Janus keeps one of each). A room Janus forgot (it restarted: rooms made through
    its API live in its memory) is made again first, under its id and secret, for the
    consultation the seat was just read from; every page that comes back adds its token."""
    room = seat.credential.room_id
    token = participant_token(
        provider.options.token_secret, seat.credential.expires_at, room, seat.me.provider_user_id
    )
    try:
        await _allow(provider, room, token)
    except VideoroomError as error:
        if error.code != NO_SUCH_ROOM:
            raise _refused(error) from None
        await provider.make_room(room, len(seat.roster.participants))
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


def _entry(roster: RoomRoster, user_id: str) -> RosterEntry | None:
    return next((p for p in roster.participants if p.provider_user_id == user_id), None)
