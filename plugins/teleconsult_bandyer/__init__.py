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

from teleconsult import plugin
from teleconsult_bandyer import events, kaleyra
from teleconsult_bandyer.client import PROVIDER, ClientOptions, KaleyraClient

NAME = PROVIDER
log = logging.getLogger(__name__)


class BandyerSettings(plugin.DeclaredSettings):
    """The provider's variables, with their defaults and meanings (rows of docs/settings.md)."""

    base_url: plugin.BaseUrl | None = plugin.setting(
        "BANDYER_BASE_URL",
        None,
        "`bandyer` provider, required: the Kaleyra Video v2 API base URL, e.g. "
        "`https://api.sandbox.eu.bandyer.com` (sandbox) or `https://api.eu.bandyer.com`",
    )
    api_key: str = plugin.setting(
        "BANDYER_API_SECRET_KEY",
        "",
        "`bandyer` provider, required: the Kaleyra API key (sent only in the `apikey` header, "
        "never logged)",
        secret=True,
    )
    timeout_ms: plugin.WholeNumber = plugin.CallPolicy.timeout_setting("BANDYER", NAME, "Kaleyra")
    max_attempts: plugin.WholeNumber = plugin.CallPolicy.attempts_setting(
        "BANDYER",
        NAME,
        ", for the calls that are safe to repeat (and for 429 and refused connections)",
    )

    def check(self) -> None:
        self.client_options()

    def client_options(self) -> ClientOptions:
        """The Kaleyra client's options, the required variables checked."""
        if not self.base_url:
            raise plugin.ConfigurationError(
                "VIDEO_PROVIDER=bandyer needs BANDYER_BASE_URL, the Kaleyra v2 API base URL "
                "(for example https://api.sandbox.eu.bandyer.com)."
            )
        if not self.api_key:
            raise plugin.ConfigurationError(
                "VIDEO_PROVIDER=bandyer needs BANDYER_API_SECRET_KEY (or "
                "BANDYER_API_SECRET_KEY_FILE), the Kaleyra API key."
            )
        return ClientOptions(
            base_url=self.base_url,
            api_key=self.api_key,
            policy=plugin.CallPolicy.of(self.timeout_ms, self.max_attempts),
        )


class BandyerVideo:
    name = NAME
    limits = plugin.ProviderLimits(
        min_participants=2, max_participants=25, min_duration_seconds=60, max_duration_seconds=86400
    )
    credentials_seconds = (360, 86400)
    background_types = frozenset({"image/jpeg"})
    """Kaleyra documents JPEG backgrounds only: others are refused before anything is sent."""
    revocation_refusal = (
        "Kaleyra's documented API fixes each participant's link when the room is created and "
        "has no call that ends one user's access (only deleting the room ends every link); "
        "cancel the teleconsultation to end them"
    )
    """Why `DELETE .../link` and `PUT .../block` answer 501 (no `LinkRevocation`)."""

    def __init__(
        self, client: KaleyraClient, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.client = client
        self.clock = clock

    async def verify_event(
        self, headers: Mapping[str, str], body: bytes
    ) -> Sequence[plugin.ProviderEvent]:
        """Kaleyra's own webhooks, signed with the API key (`events.py`)."""
        return events.verify(self.client.options.api_key, headers, body, self.clock())

    async def ensure_user(self, external_id: str, level: plugin.Level) -> str:
        # Our own id, derived from the external one: a repeat is a 409, i.e. one user.
        user_id = plugin.stable_user_id(external_id, max_length=kaleyra.USER_ID_MAX_LENGTH)
        return await self.client.create_user(user_id, level.value)

    async def create_room(self, spec: plugin.RoomSpec) -> plugin.CreatedRoom:
        room = await self.client.create_room(spec)
        missing = [
            p.provider_user_id for p in spec.participants if p.provider_user_id not in room.links
        ]
        if missing:  # a room we cannot hand out: delete it at once, while its id is known
            detail = f"no link for {len(missing)} participant(s)"
            try:
                await self.client.delete_room(room.room_id)
            except plugin.ProviderError:
                log.warning("could not delete Kaleyra room %s made without links", room.room_id)
                raise plugin.ProviderError(
                    NAME, "create a room", "bad_answer", detail, may_have_acted=True
                ) from None
            raise plugin.ProviderError(NAME, "create a room", "bad_answer", detail)
        return plugin.CreatedRoom(provider_room_id=room.room_id, links=dict(room.links))

    async def delete_room(self, provider_room_id: str) -> None:
        await self.client.delete_room(provider_room_id)

    async def check(self) -> None:
        await self.client.list_users(limit=1)

    def join_link(self, join: plugin.JoinRequest) -> str:
        """The link Kaleyra made for the participant, with the language and background."""
        if join.stored_link is None:
            raise plugin.ProviderError(NAME, "make a join link", "bad_answer", "no link was stored")
        return plugin.with_query(
            join.stored_link,
            {
                kaleyra.LINK_LANGUAGE: join.language,
                kaleyra.LINK_BACKGROUND: kaleyra.LINK_BACKGROUND_IMAGE if join.background else None,
            },
        )

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        return await self.client.get_room(provider_room_id)

    async def create_credentials(
        self, provider_user_id: str, expires_in: int
    ) -> plugin.Credentials:
        return await self.client.create_sdk_credentials(provider_user_id, expires_in)

    async def list_uploads(self, provider_room_id: str) -> list[str]:
        return await self.client.list_uploads(provider_room_id)

    async def delete_upload(self, key: str) -> None:
        await self.client.delete_upload(key)

    async def upload_background(self, upload: plugin.Upload) -> dict[str, object]:
        return await self.client.upload_virtual_background(
            upload.content, upload.filename, upload.content_type
        )

    async def set_default_background(self, alias: str) -> dict[str, object]:
        return await self.client.set_default_background(alias)

    async def close(self) -> None:
        await self.client.close()


def create(context: plugin.ProviderContext[BandyerSettings]) -> BandyerVideo:
    """Kaleyra's `environment` (`context.provider_config.environment`, from the service
    configuration file) is the plugin's to read; the base URL already says which one."""
    client = KaleyraClient(context.settings.client_options(), aiohttp.ClientSession())
    return BandyerVideo(client, context.clock)


@plugin.hookimpl
def register_video_providers() -> list[plugin.VideoProviderPlugin[BandyerSettings]]:
    return [
        plugin.VideoProviderPlugin(
            name=NAME,
            create=create,
            description="Kaleyra Video (Bandyer) REST API v2.",
            link_markers=(kaleyra.LINK_PATH_MARKER,),
            settings=BandyerSettings,
            # A Kaleyra key says which provider is meant, as it did for the original.
            chosen_by=("BANDYER_API_SECRET_KEY", "BANDYER_API_SECRET_KEY_FILE"),
        )
    ]
