"""LiveKit access tokens: the SDK's grants and claims, signed for the consultation's window.

The SDK's `AccessToken` builds the claims (identity as `sub`, `name`, the `video`
grant in LiveKit's own field names) but always stamps `nbf` with the present and
`exp` with the present plus a lifetime. A join token must instead open at the lock
time and close at the end plus the grace, whenever it is handed out, so the claims
the SDK built are signed here (HS256 with the API secret, as `to_jwt` does) with the
window's `nbf` and `exp`.

What a participant may do follows their tools where LiveKit has an equivalent:
everyone joins, subscribes and publishes camera and microphone; `screen_sharing`
adds the screen share sources; `chat` and `file_upload` (chat messages and files
travel as data in LiveKit) allow publishing data; `plus` participants are room
admins (they may mute and remove others). The other tools have no LiveKit equivalent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jwt
from livekit import api

from teleconsult.plugin import JoinRequest, RoomParticipant, TokenWindow
from teleconsult_livekit.identities import identity

ALGORITHM = "HS256"
ALWAYS = ("camera", "microphone")
SOURCES_BY_TOOL = {"screen_sharing": ("screen_share", "screen_share_audio")}
DATA_TOOLS = frozenset({"chat", "file_upload"})


def grants(room: str, seat: RoomParticipant) -> api.VideoGrants:
    """This room only, with what the participant's level and tools allow."""
    sources = [*ALWAYS]
    for tool, more in SOURCES_BY_TOOL.items():
        if tool in seat.tools:
            sources.extend(more)
    return api.VideoGrants(
        room_join=True,
        room=room,
        room_admin=seat.is_admin,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=bool(DATA_TOOLS & set(seat.tools)),
        can_publish_sources=sources,
    )


@dataclass(frozen=True)
class Minter:
    """Signs tokens with the API key and secret the RoomService calls use."""

    api_key: str
    api_secret: str = field(repr=False)
    window: TokenWindow

    def join_token(self, join: JoinRequest) -> str:
        """The participant's token for their room, valid in the consultation's window."""
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity(join.participant.provider_user_id, join.link_generation))
            .with_name(join.display_name)
            .with_grants(grants(join.provider_room_id, join.participant))
        )
        return self.signed(token, *self.window.claims(join))

    def identity_token(self, user_id: str, not_before: int, expires: int) -> str:
        """A token that names the user and lets them into no room: SDK credentials for a
        custom frontend, which joins a room with the token of that room's link."""
        token = api.AccessToken(self.api_key, self.api_secret).with_identity(user_id)
        no_room = api.VideoGrants(can_publish=False, can_subscribe=False, can_publish_data=False)
        return self.signed(token.with_grants(no_room), not_before, expires)

    def signed(self, token: api.AccessToken, not_before: int, expires: int) -> str:
        claims = token.claims.asdict()
        claims.update(sub=token.identity, iss=token.api_key, nbf=not_before, exp=expires)
        return jwt.encode(claims, self.api_secret, algorithm=ALGORITHM)
