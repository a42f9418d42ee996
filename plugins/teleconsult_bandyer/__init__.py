"""Video provider `bandyer`: Kaleyra Video (formerly Bandyer) through its REST API v2.

Selected with VIDEO_PROVIDER=bandyer, the default whenever BANDYER_API_SECRET_KEY
is set. Needs BANDYER_BASE_URL and BANDYER_API_SECRET_KEY; BANDYER_TIMEOUT_MS and
BANDYER_MAX_ATTEMPTS tune each call. `kaleyra.py` holds the API's paths and
field names, `client.py` the HTTP calls, this module the provider the core uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import aiohttp

from teleconsult.plugin import (
    ConfigurationError,
    CreatedRoom,
    Credentials,
    JoinRequest,
    Level,
    ProviderContext,
    ProviderError,
    ProviderEvent,
    ProviderLimits,
    RoomSpec,
    Setting,
    SettingsReader,
    Upload,
    VideoProviderPlugin,
    hookimpl,
    stable_user_id,
    with_query,
)
from teleconsult_bandyer import events, kaleyra
from teleconsult_bandyer.client import PROVIDER, ClientOptions, KaleyraClient

NAME = PROVIDER
log = logging.getLogger(__name__)
SETTINGS = (
    Setting(
        "BANDYER_BASE_URL",
        "",
        "`bandyer` provider, required: the Kaleyra Video v2 API base URL, e.g. "
        "`https://api.sandbox.eu.bandyer.com` (sandbox) or `https://api.eu.bandyer.com`",
    ),
    Setting(
        "BANDYER_API_SECRET_KEY",
        "",
        "`bandyer` provider, required: the Kaleyra API key (sent only in the `apikey` header, "
        "never logged)",
        secret=True,
    ),
    Setting("BANDYER_TIMEOUT_MS", "10000", "`bandyer` provider: timeout of each call to Kaleyra"),
    Setting(
        "BANDYER_MAX_ATTEMPTS",
        "3",
        "`bandyer` provider: attempts per call, for the calls that are safe to repeat (and for "
        "429 and refused connections)",
    ),
)
"""The provider's variables, with their defaults and meanings (the README's rows)."""


class BandyerVideo:
    name = NAME
    limits = ProviderLimits(
        min_participants=2, max_participants=25, min_duration_seconds=60, max_duration_seconds=86400
    )
    credentials_seconds = (360, 86400)
    background_types = frozenset({"image/jpeg"})
    """Kaleyra documents JPEG backgrounds only: others are refused before anything is sent."""

    def __init__(
        self, client: KaleyraClient, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.client = client
        self.clock = clock

    async def verify_event(
        self, headers: Mapping[str, str], body: bytes
    ) -> Sequence[ProviderEvent]:
        """Kaleyra's own webhooks, signed with the API key (`events.py`)."""
        return events.verify(self.client.options.api_key, headers, body, self.clock())

    async def ensure_user(self, external_id: str, level: Level) -> str:
        # Our own id, derived from the external one: a repeat is a 409, i.e. one user.
        user_id = stable_user_id(external_id, max_length=kaleyra.USER_ID_MAX_LENGTH)
        return await self.client.create_user(user_id, level.value)

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        room = await self.client.create_room(spec)
        missing = [
            p.provider_user_id for p in spec.participants if p.provider_user_id not in room.links
        ]
        if missing:  # a room we cannot hand out: delete it at once, while its id is known
            detail = f"no link for {len(missing)} participant(s)"
            try:
                await self.client.delete_room(room.room_id)
            except ProviderError:
                log.warning("could not delete Kaleyra room %s made without links", room.room_id)
                raise ProviderError(
                    NAME, "create a room", "bad_answer", detail, may_have_acted=True
                ) from None
            raise ProviderError(NAME, "create a room", "bad_answer", detail)
        return CreatedRoom(provider_room_id=room.room_id, links=dict(room.links))

    async def delete_room(self, provider_room_id: str) -> None:
        await self.client.delete_room(provider_room_id)

    async def check(self) -> None:
        await self.client.list_users(limit=1)

    def join_link(self, join: JoinRequest) -> str:
        """The link Kaleyra made for the participant, with the language and background."""
        if join.stored_link is None:
            raise ProviderError(NAME, "make a join link", "bad_answer", "no link was stored")
        return with_query(
            join.stored_link,
            {
                kaleyra.LINK_LANGUAGE: join.language,
                kaleyra.LINK_BACKGROUND: kaleyra.LINK_BACKGROUND_IMAGE if join.background else None,
            },
        )

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        return await self.client.get_room(provider_room_id)

    async def create_credentials(self, provider_user_id: str, expires_in: int) -> Credentials:
        return await self.client.create_sdk_credentials(provider_user_id, expires_in)

    async def list_uploads(self, provider_room_id: str) -> list[str]:
        return await self.client.list_uploads(provider_room_id)

    async def delete_upload(self, key: str) -> None:
        await self.client.delete_upload(key)

    async def upload_background(self, upload: Upload) -> dict[str, object]:
        return await self.client.upload_virtual_background(
            upload.content, upload.filename, upload.content_type
        )

    async def set_default_background(self, alias: str) -> dict[str, object]:
        return await self.client.set_default_background(alias)

    async def close(self) -> None:
        await self.client.close()


def client_options(environ: Mapping[str, str]) -> ClientOptions:
    """BANDYER_* variables, checked before anything is created: a bad one stops the start."""
    read = SettingsReader(environ, SETTINGS)
    base_url = read.url("BANDYER_BASE_URL")
    api_key = read.secret("BANDYER_API_SECRET_KEY")
    if not base_url:
        raise ConfigurationError(
            "VIDEO_PROVIDER=bandyer needs BANDYER_BASE_URL, the Kaleyra v2 API base URL "
            "(for example https://api.sandbox.eu.bandyer.com)."
        )
    if not api_key:
        raise ConfigurationError(
            "VIDEO_PROVIDER=bandyer needs BANDYER_API_SECRET_KEY (or BANDYER_API_SECRET_KEY_FILE), "
            "the Kaleyra API key."
        )
    return ClientOptions(
        base_url=base_url,
        api_key=api_key,
        timeout_seconds=read.integer("BANDYER_TIMEOUT_MS", minimum=1) / 1000,
        max_attempts=read.integer("BANDYER_MAX_ATTEMPTS", minimum=1),
    )


def create(context: ProviderContext) -> BandyerVideo:
    options = client_options(context.environ)
    return BandyerVideo(KaleyraClient(options, aiohttp.ClientSession()), context.clock)


@hookimpl
def register_video_providers() -> list[VideoProviderPlugin]:
    return [
        VideoProviderPlugin(
            name=NAME,
            create=create,
            description="Kaleyra Video (Bandyer) REST API v2.",
            link_markers=(kaleyra.LINK_PATH_MARKER,),
            settings=SETTINGS,
            check_settings=lambda context: client_options(context.environ),
            # A Kaleyra key says which provider is meant, as it did for the original.
            chosen_by=("BANDYER_API_SECRET_KEY", "BANDYER_API_SECRET_KEY_FILE"),
        )
    ]
