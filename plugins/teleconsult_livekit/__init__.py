"""Video provider `livekit`: LiveKit (self-hosted or Cloud) through its server SDK, livekit-api.

Rooms are made and deleted through LiveKit's RoomService (`rooms.py`), under names
we choose: `teleconsult-` and 128 random bits, chosen before the call, so that a
creation whose answer was lost is repaired by asking again (CreateRoom answers the
room of that name if there is one). Each participant's link is made when it is
handed out: LIVEKIT_JOIN_URL_TEMPLATE filled with a LiveKit access token for that
room alone, valid from the lock time to the end plus LIVEKIT_TOKEN_GRACE_MS
(`tokens.py`); no token is stored. `POST /credentials` answers a token that names
the caller and opens no room; GET's `details` say who is connected.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

import aiohttp
from livekit import api
from livekit.protocol import models

from teleconsult import plugin
from teleconsult_livekit import events, identities
from teleconsult_livekit.rooms import PROVIDER, RoomClient
from teleconsult_livekit.tokens import Minter

NAME = PROVIDER
ROOM_PREFIX = "teleconsult-"
TEMPLATE_FIELDS = ("url", "token", "room")
LINK_MARKER = "liveKitUrl="
"""Found in every link of the default template (and LiveKit Meet's): such text is redacted.
Whatever the template, the token in a link is a JWT, which the logs never keep."""
MIN_SECRET_CHARS = 32
"""livekit-server refuses shorter secrets, and a short HS256 secret could be guessed from any
token a patient was handed."""


@dataclass(frozen=True)
class Options:
    url: str
    api_key: str
    api_secret: str = field(repr=False)
    template: str
    max_participants: int
    window: plugin.TokenWindow
    policy: plugin.CallPolicy

    @property
    def client_url(self) -> str:
        """Where a LiveKit client connects: the same server, over WebSocket."""
        return "ws" + self.url.removeprefix("http")


class LiveKitVideo:
    name = NAME
    credentials_seconds = (60, 24 * 3600)

    def __init__(self, options: Options, rooms: RoomClient, clock: Callable[[], datetime]) -> None:
        self.options = options
        self.rooms = rooms
        self.clock = clock
        self.tokens = Minter(options.api_key, options.api_secret, options.window)
        self.receiver = api.WebhookReceiver(api.TokenVerifier(options.api_key, options.api_secret))
        self.limits = plugin.ProviderLimits(max_participants=options.max_participants)

    async def ensure_user(self, external_id: str, level: plugin.Level) -> str:
        # LiveKit has no users: the id is the identity in the participant's tokens.
        return plugin.stable_user_id(external_id)

    async def create_room(self, spec: plugin.RoomSpec) -> plugin.CreatedRoom:
        return await self.create_named_room(self.room_name(), spec)

    def room_name(self) -> str:
        return ROOM_PREFIX + secrets.token_hex(16)

    async def create_named_room(self, name: str, spec: plugin.RoomSpec) -> plugin.CreatedRoom:
        """A room for exactly the invited participants, under the name the core chose (and
        wrote in the room's job first). LiveKit itself ends no call: a limited room's
        duration bounds its tokens instead."""
        refusal = self.limits.refusal(spec)
        if refusal is not None:
            raise plugin.ProviderError(NAME, "create a room", "bad_answer", refusal)
        await self.rooms.create_room(name, max_participants=len(spec.participants))
        return plugin.CreatedRoom(provider_room_id=name)

    async def delete_room(self, provider_room_id: str) -> None:
        await self.rooms.delete_room(provider_room_id)

    def join_link(self, join: plugin.JoinRequest) -> str:
        """The template with the server's address, a fresh token and the room, URL-encoded."""
        values = {
            "url": self.options.client_url,
            "token": self.tokens.join_token(join),
            "room": join.provider_room_id,
        }
        return self.options.template.format_map(
            {name: quote(value, safe="") for name, value in values.items()}
        )

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        """Who is connected now (provider user ids; names stay out of details)."""
        present = [
            identities.user_of(member.identity)
            for member in await self.rooms.participants(provider_room_id)
            if member.state != models.ParticipantInfo.DISCONNECTED
        ]
        return {"status": "ongoing" if present else "waiting", "connected": present}

    async def create_credentials(
        self, provider_user_id: str, expires_in: int
    ) -> plugin.Credentials:
        now = self.clock().replace(microsecond=0)
        expires = now + timedelta(seconds=expires_in)
        token = self.tokens.identity_token(
            provider_user_id, int(now.timestamp()), int(expires.timestamp())
        )
        expires_at = expires.isoformat().replace("+00:00", "Z")
        return plugin.Credentials(token, expires_at, provider_user_id)

    async def revoke_link(self, revocation: plugin.Revocation) -> None:
        """Disconnect every session of the participant with a token of an earlier generation
        (RoomService RemoveParticipant); their next link's token carries a new identity.

        LiveKit keeps no list of revoked tokens: an earlier token still joins the room again
        until its `exp` (the end plus LIVEKIT_TOKEN_GRACE_MS), as a new session that another
        revocation removes (docs/operations.md, "Revoking a link")."""
        room, user = revocation.provider_room_id, revocation.provider_user_id
        for member in await self.rooms.participants(room):
            earlier = identities.generation_of(member.identity) < revocation.generation
            if identities.user_of(member.identity) == user and earlier:
                await self.rooms.remove_participant(room, member.identity)

    async def verify_event(
        self, headers: Mapping[str, str], body: bytes
    ) -> Sequence[plugin.ProviderEvent]:
        """LiveKit's own webhooks, checked by the SDK's `WebhookReceiver` (`events.py`)."""
        return events.verify(self.receiver, headers, body, self.clock())

    async def check(self) -> None:
        await self.rooms.check()

    async def close(self) -> None:
        await self.rooms.close()


class LiveKitSettings(plugin.DeclaredSettings):
    """The provider's variables, with their defaults and meanings (rows of docs/settings.md)."""

    url: plugin.BaseUrl | None = plugin.setting(
        "LIVEKIT_URL",
        None,
        "`livekit` provider, required: the LiveKit server's URL, `https://...` (`http://` for a "
        "loopback host only); clients connect to the same host over `wss://`",
    )
    api_key: str = plugin.setting(
        "LIVEKIT_API_KEY",
        "",
        "`livekit` provider, required: the API key (the tokens' `iss`; never logged)",
        secret=True,
    )
    api_secret: str = plugin.setting(
        "LIVEKIT_API_SECRET",
        "",
        "`livekit` provider, required: the API key's secret, at least 32 characters (signs the "
        "calls and the tokens; never logged)",
        secret=True,
    )
    join_url_template: plugin.BaseUrl = plugin.setting(
        "LIVEKIT_JOIN_URL_TEMPLATE",
        "https://meet.livekit.io/custom?liveKitUrl={url}&token={token}",
        "`livekit` provider: the link handed out (LiveKit Meet's form by default; point it at your"
        " own frontend): `{url}` the server's `wss://` URL, `{token}` the participant's token, "
        "`{room}` the room name, each URL-encoded; `{token}` is required, any other field stops "
        "the start",
    )
    max_participants: plugin.WholeNumber = plugin.setting(
        "LIVEKIT_MAX_PARTICIPANTS",
        25,
        "`livekit` provider: the most participants a teleconsultation may have",
        minimum=2,
        maximum=1000,
    )
    token_grace_ms: plugin.WholeNumber = plugin.TokenWindow.grace_setting("LIVEKIT", NAME)
    max_lifetime_ms: plugin.WholeNumber = plugin.TokenWindow.lifetime_setting("LIVEKIT", NAME)
    timeout_ms: plugin.WholeNumber = plugin.CallPolicy.timeout_setting(
        "LIVEKIT", NAME, "LiveKit's RoomService"
    )
    max_attempts: plugin.WholeNumber = plugin.CallPolicy.attempts_setting(
        "LIVEKIT",
        NAME,
        " (every call it makes is safe to repeat) after a timeout, a 5xx, a 429 or no connection",
    )

    def check(self) -> None:
        self.options()

    def options(self) -> Options:
        """The provider's options: required variables, the secret's length and the template's
        fields checked."""
        for name, value, what in [
            (
                "LIVEKIT_URL",
                self.url,
                "the LiveKit server's https URL (for example https://lk.example.org)",
            ),
            ("LIVEKIT_API_KEY", self.api_key, "the API key"),
            ("LIVEKIT_API_SECRET", self.api_secret, "the API key's secret"),
        ]:
            if not value:
                raise plugin.ConfigurationError(f"VIDEO_PROVIDER=livekit needs {name}, {what}.")
        url = self.url or ""  # checked just above
        if len(self.api_secret) < MIN_SECRET_CHARS:
            raise plugin.ConfigurationError(
                f"LIVEKIT_API_SECRET must be at least {MIN_SECRET_CHARS} characters, as LiveKit "
                "requires."
            )
        check_template(self.join_url_template)
        return Options(
            url=url,
            api_key=self.api_key,
            api_secret=self.api_secret,
            template=self.join_url_template,
            max_participants=self.max_participants,
            window=plugin.TokenWindow.of(self.token_grace_ms, self.max_lifetime_ms),
            policy=plugin.CallPolicy.of(self.timeout_ms, self.max_attempts),
        )


def check_template(template: str) -> None:
    """An https (or loopback http) URL naming only the fields a link is made of, with {token}."""
    name = "LIVEKIT_JOIN_URL_TEMPLATE"
    try:
        fields = [part for _, part, _, _ in string.Formatter().parse(template) if part is not None]
    except ValueError as error:
        raise plugin.ConfigurationError(
            f"{name} is not a valid template ({error}); got {template!r}."
        ) from None
    unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
    if unknown or "token" not in fields:
        raise plugin.ConfigurationError(
            f"{name} may use the fields {{url}}, {{token}} and {{room}}, and must use "
            f"{{token}}; got {template!r}."
        )


def create(context: plugin.ProviderContext[LiveKitSettings]) -> LiveKitVideo:
    settings = context.settings.options()
    session = aiohttp.ClientSession()
    # failover=False: one attempt per call, so retries and timeouts are ours (rooms.py).
    lk = api.LiveKitAPI(
        settings.url, settings.api_key, settings.api_secret, session=session, failover=False
    )
    return LiveKitVideo(settings, RoomClient(lk, session, settings.policy), context.clock)


@plugin.hookimpl
def register_video_providers() -> list[plugin.VideoProviderPlugin[LiveKitSettings]]:
    return [
        plugin.VideoProviderPlugin(
            name=NAME,
            create=create,
            description="LiveKit through livekit-api: RoomService rooms, a token per link.",
            link_markers=(LINK_MARKER,),
            settings=LiveKitSettings,
        )
    ]
