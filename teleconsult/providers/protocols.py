"""What the core asks of providers: typed protocols that plugins implement.

The core reaches a provider only through these protocols, handed to it by the
plugin manager; it never imports a provider's module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from teleconsult.callpage import CallPage, default_call_page
from teleconsult.configuration.declarations import DeclaredSettings
from teleconsult.configuration.provider_config import ProviderConfig
from teleconsult.core.domain import Level, ProviderLimits, RoomParticipant, RoomSpec
from teleconsult.providers.storage import ProviderStorage, Roster

if TYPE_CHECKING:
    from aiohttp import web

    from teleconsult.configuration.tokens import TokenDefaults

OwnSettings = TypeVar("OwnSettings", bound=DeclaredSettings)
"""A provider's own settings class, which its registration names and its context holds."""


@dataclass(frozen=True)
class ParticipantEntry:
    """One participant as a caller described them; the identity provider completes it."""

    external_id: str
    groups: tuple[str, ...] | None
    full_name: str | None
    language: str | None
    path: str
    """Where the entry stands in the request body, for error messages (`participants.data[1]`)."""


@dataclass(frozen=True)
class Caller:
    """Who made the request (None when unknown), and its headers.

    Identity providers that ask another service forward some of these headers
    (a client type, tracing ids); they are kept out of reprs, and so out of logs.
    """

    id: str | None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    groups: frozenset[str] | None = None
    """The caller's own groups, when the service was told where to read them (MANAGER_GROUPS)."""


@dataclass(frozen=True)
class Identity:
    external_id: str
    groups: tuple[str, ...]
    full_name: str = field(repr=False)
    """A participant's name is health data: kept out of reprs, and so out of logs."""


@dataclass(frozen=True)
class CreatedRoom:
    provider_room_id: str
    links: Mapping[str, str] = field(default_factory=dict, repr=False)
    """One join link per provider user id, for providers whose links are fixed at creation;
    empty for those that make each link when it is handed out (`join_link`)."""


class IdentityProvider(Protocol):
    """Says who a participant is: their groups (hence their level) and their name."""

    name: str

    @property
    def resolves_bare_ids(self) -> bool:
        """True when callers may send bare user ids and let the provider find the rest."""
        ...

    async def identify(self, entries: Sequence[ParticipantEntry], caller: Caller) -> list[Identity]:
        """Return one identity per entry, in order; `caller` made the request.

        Raise `InvalidRequest` naming `entry.path` for an entry the provider cannot use,
        and `ProviderError` when the provider itself fails.
        """
        ...

    async def close(self) -> None:
        """Release what the provider holds (HTTP sessions); called once at shutdown."""
        ...


@dataclass(frozen=True)
class JoinRequest:
    """What a provider needs to make one participant's join link, when the link is handed out.

    Links are made at every GET once the teleconsultation is locked, not stored: a
    provider whose links are tokens mints one bounded to the consultation
    (`opens_at` to `ends_at` plus its grace), and one whose links are fixed
    returns `stored_link` (what `create_room` gave) with the options applied.
    """

    teleconsultation_id: str
    provider_room_id: str
    participant: RoomParticipant
    display_name: str = field(repr=False)
    """The participant's name: health data, never to be logged."""
    stored_link: str | None = field(repr=False)
    """The link `create_room` returned for this participant, if it returned one."""
    language: str | None
    background: bool
    """Whether the company's virtual background should be on."""
    opens_at: datetime
    """When links are first handed out: the lock time (start minus the immutable window)."""
    starts_at: datetime
    ends_at: datetime
    limited: bool
    """Whether the room has a duration (`UNLIMITED_TELECONSULTATION=false`)."""
    link_generation: int = 0
    """The participant's link generation: each revocation raises it, and a provider with
    `LinkRevocation` makes links of earlier generations open nothing."""

    def window(self, grace: timedelta, max_lifetime: timedelta) -> tuple[datetime, datetime]:
        """When a credential for this link may be used: from `opens_at` (links are handed
        out from then on) until `ends_at` plus `grace`, or, for a room without a duration,
        until `starts_at` plus `max_lifetime`. Token providers bound their tokens to it."""
        expires = self.ends_at + grace if self.limited else self.starts_at + max_lifetime
        return self.opens_at, max(expires, self.opens_at)


class VideoProvider(Protocol):
    """The room lifecycle every video provider offers: users, rooms and each caller's link.

    Every method is safe to call again after a failure. What only some providers
    offer (room details, SDK credentials, uploads, virtual backgrounds) are the
    capability protocols below; the endpoints that need one answer 501 when the
    configured provider lacks it.
    """

    name: str
    limits: ProviderLimits

    async def ensure_user(self, external_id: str, level: Level) -> str:
        """Make sure a provider user stands for `external_id` and return its id.

        Must be idempotent: two calls for one external id, even at the same time,
        end with a single provider user (derive the id with `stable_user_id`).
        """
        ...

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        """Create a room for `spec`; return its id and, if the provider has fixed links,
        one per participant (kept by the core and given back in `JoinRequest`)."""
        ...

    async def delete_room(self, provider_room_id: str) -> None:
        """Delete a room. A room that is already gone counts as deleted."""
        ...

    def join_link(self, join: JoinRequest) -> str:
        """The link one participant opens to join. No I/O: called on every poll once the
        teleconsultation is locked."""
        ...

    async def check(self) -> None:
        """Raise `ProviderError` when the provider cannot be reached (for `/-/check-up`)."""
        ...

    async def close(self) -> None:
        """Release what the provider holds (HTTP sessions); called once at shutdown."""
        ...


@runtime_checkable
class RoomDetails(Protocol):
    """The provider describes a room (GET's `details`)."""

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        """The room with camelCase keys (`status`, `durationInSeconds`, ...)."""
        ...


@runtime_checkable
class SdkCredentials(Protocol):
    """Credentials for the provider's own SDK, for a custom frontend (`POST /credentials`)."""

    credentials_seconds: tuple[int, int]
    """The shortest and longest validity the provider grants, in seconds."""

    async def create_credentials(self, provider_user_id: str, expires_in: int) -> Credentials:
        """SDK credentials for a user, valid `expires_in` seconds."""
        ...


@runtime_checkable
class Uploads(Protocol):
    """Files participants uploaded in a room (`DELETE /teleconsultation/:id/uploads`)."""

    async def list_uploads(self, provider_room_id: str) -> list[str]:
        """The keys of every file uploaded in a room (all pages)."""
        ...

    async def delete_upload(self, key: str) -> None:
        """Delete an uploaded file; one already gone counts as deleted."""
        ...


@runtime_checkable
class VirtualBackgrounds(Protocol):
    """The company's virtual backgrounds (`POST /settings/background-image`,
    `PATCH /settings/update`)."""

    background_types: frozenset[str]
    """The image types the provider accepts (`image/jpeg`); others are a 415."""

    async def upload_background(self, upload: Upload) -> dict[str, object]:
        """Add a background; answer `{background_alias, url, creation_date}`."""
        ...

    async def set_default_background(self, alias: str) -> dict[str, object]:
        """Make a background the company default; answer the company as the provider does.
        Raise `NotFound` for an unknown alias."""
        ...


@runtime_checkable
class NamedRooms(Protocol):
    """The provider creates rooms under names chosen before the call.

    The core asks for the name first and writes it into the room's outbox job, then
    creates the room: a creation whose answer was lost, or whose process died before it
    learned the answer, is still found by the reconciler, which deletes the room (or
    closes the job when the record points to it). A provider without it names rooms
    itself, and such a room is out of reach (docs/operations.md, "Limits").
    """

    def room_name(self) -> str:
        """A new room name, unguessable and never given before; no I/O."""
        ...

    async def create_named_room(self, name: str, spec: RoomSpec) -> CreatedRoom:
        """Create the room `name` for `spec`; its `provider_room_id` is `name`."""
        ...


@dataclass(frozen=True)
class Revocation:
    """One participant's links handed out so far must stop working (issue 30)."""

    teleconsultation_id: str
    provider_room_id: str
    provider_user_id: str
    generation: int
    """The participant's new link generation: links of an earlier one open nothing."""
    removed: bool
    """Removed from the call and kept out (blocked), not only handed a new link."""


@runtime_checkable
class LinkRevocation(Protocol):
    """The provider can end the access of links it made (`DELETE .../link`, `PUT .../block`)."""

    async def revoke_link(self, revocation: Revocation) -> None:
        """Called once the record holds the new generation: disconnect whoever uses the
        participant's earlier links now, and refuse those links from now on. Safe to call
        again (a retry of the request raises the generation once more)."""
        ...


@runtime_checkable
class UnrevocableLinks(Protocol):
    """A provider without `LinkRevocation` that says why (the 501's message)."""

    revocation_refusal: str


@dataclass(frozen=True)
class ProviderEvent:
    """Something the provider saw happen in one of its rooms: `kind` is one of
    `participant.joined`, `participant.left` (with the provider user), `call.started`,
    `call.ended`, and the lobby's `participant.waiting`, `participant.admitted`,
    `participant.declined` (with the provider user; `by`, who admitted or declined)."""

    kind: str
    provider_room_id: str
    at: datetime
    provider_user_id: str | None = None
    event_id: str = ""
    """The provider's own id for the event, if it has one (for logs)."""
    by: str | None = None
    """The provider user who admitted or declined a waiting participant."""


@runtime_checkable
class ProviderEvents(Protocol):
    """The provider sends its own webhooks (`POST /providers/{name}/events`)."""

    async def verify_event(
        self, headers: Mapping[str, str], body: bytes
    ) -> Sequence[ProviderEvent]:
        """Check the request's signature with the provider's scheme and read its events
        (none for an event the core has no use for). Raise `Unauthorized` when it is unsigned,
        badly signed, or older than `EVENT_MAX_AGE` (a replay): then nothing changes."""
        ...


EVENT_MAX_AGE = timedelta(minutes=5)
"""A signed provider event older than this (by its signed timestamp) is refused as a replay."""

ReportEvents = Callable[[Sequence[ProviderEvent]], Awaitable[object]]
"""How a provider that sees the moments itself (the built-in `webrtc`) tells the core."""

RemoveParticipant = Callable[["web.Request", str, str, str], Awaitable[None]]
"""`remove(request, teleconsultation_id, by, whom)`: a plus participant's call page removes
another participant (provider user ids `by` and `whom`) as `PUT .../block` does: revoked,
blocked, recorded (the audit entry from `request`, the webhook); raises the API's errors."""


CAPABILITIES: dict[type, str] = {
    RoomDetails: "room details",
    SdkCredentials: "SDK credentials",
    Uploads: "uploads",
    VirtualBackgrounds: "virtual backgrounds",
    ProviderEvents: "provider events",
    LinkRevocation: "link revocation",
}
"""Each optional capability, with the name the 501 answer gives it."""


@dataclass(frozen=True)
class Credentials:
    """SDK credentials for one provider user. The token is a credential: never log it."""

    access_token: str = field(repr=False)
    expires_at: str
    provider_user_id: str


@dataclass(frozen=True)
class Upload:
    content: bytes = field(repr=False)
    filename: str
    content_type: str


@dataclass(frozen=True)
class ProviderContext(Generic[OwnSettings]):
    """What a provider factory gets to build its provider: its own values, never the core's
    settings or the whole service configuration."""

    settings: OwnSettings
    """The provider's own settings, read from the environment and checked as the app was
    planned (the class its registration names)."""
    server_url: str
    """This server's own address (`http://<HTTP_HOST>:<HTTP_PORT>`, a wildcard host as
    127.0.0.1), as a browser on this machine reaches it: where the links of a provider
    that serves its own pages point when no public URL of its own is configured."""
    provider_config: ProviderConfig = field(default_factory=ProviderConfig)
    """The service configuration file's values for providers (`environment`,
    `user_id_mapping`)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)
    """The service's clock: a provider that checks times (a link's window) asks it."""
    storage: ProviderStorage | None = field(default=None, repr=False)
    """The provider's own documents and mailboxes in the service's store (set by the app)."""
    roster: Roster | None = field(default=None, repr=False)
    """Reads a teleconsultation as the provider's own pages may see it (set by the app)."""
    report_events: ReportEvents | None = field(default=None, repr=False)
    """Records provider events on their teleconsultations and sends them out as webhooks,
    for a provider that sees joins and leaves itself (set by the app)."""
    remove_participant: RemoveParticipant | None = field(default=None, repr=False)
    """Removes a participant from the call, for a provider whose page offers it (set by the
    app)."""
    call_page: CallPage = field(default_factory=default_call_page, repr=False)
    """The call page, for a provider that serves it: its texts, headers and branding, from the
    `CALL_PAGE_*` settings and the configuration file (set by the app)."""


@dataclass(frozen=True)
class VideoProviderPlugin(Generic[OwnSettings]):
    """A named video provider, registered by `register_video_providers`."""

    name: str
    create: Callable[[ProviderContext[OwnSettings]], VideoProvider]
    settings: type[OwnSettings]
    """The provider's own settings class (`NoSettings` for none): its variables are listed by
    `teleconsult --help` and docs/settings.md, and known (never warned about as a typo); when the
    provider is chosen, the app reads it from the environment before it starts (a bad value
    stops the start, and `teleconsult check-config`, with its line) and hands it to `create`."""
    description: str = ""
    link_markers: tuple[str, ...] = ()
    """Path fragments found only in this provider's join links (`/fake-video/join/`): any
    text holding one is redacted from logs, since a link is a bearer credential."""
    chosen_by: tuple[str, ...] = ()
    """Variables that make this provider the default when VIDEO_PROVIDER is unset, when one
    is set (`BANDYER_API_SECRET_KEY`: an environment of the original meant Kaleyra)."""


@dataclass(frozen=True)
class IdentityProviderPlugin(Generic[OwnSettings]):
    """A named identity provider, registered by `register_identity_providers`."""

    name: str
    create: Callable[[ProviderContext[OwnSettings]], IdentityProvider]
    settings: type[OwnSettings]
    """As `VideoProviderPlugin.settings`."""
    description: str = ""
    chosen_by: tuple[str, ...] = ()
    """Variables that make this provider the default when IDENTITY_PROVIDER is unset."""
    token_defaults: Callable[[Mapping[str, str]], TokenDefaults | None] | None = None
    """Where the provider's tenant, named in the environment, publishes its token signing
    keys and which issuer its tokens carry: the defaults of JWT_JWKS_URL and JWT_ISSUER."""
