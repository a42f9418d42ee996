"""What the core asks of providers: typed protocols that plugins implement.

The core reaches a provider only through these protocols, handed to it by the
plugin manager; it never imports a provider's module.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from yarl import URL

from teleconsult.core.domain import Level, ProviderLimits, RoomSpec

T = TypeVar("T")

if TYPE_CHECKING:
    from teleconsult.configuration.service_config import ServiceConfig
    from teleconsult.configuration.settings import Settings


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
    links: Mapping[str, str] = field(repr=False)
    """One access link per provider user id of the room spec."""


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


class VideoProvider(Protocol):
    """Provider users, rooms and links. Every method is safe to call again after a failure."""

    name: str
    limits: ProviderLimits

    async def ensure_user(self, external_id: str, level: Level) -> str:
        """Make sure a provider user stands for `external_id` and return its id.

        Must be idempotent: two calls for one external id, even at the same time,
        end with a single provider user (derive the id from the external id).
        """
        ...

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        """Create a room for `spec` and return its id and one link per participant."""
        ...

    async def delete_room(self, provider_room_id: str) -> None:
        """Delete a room. A room that is already gone counts as deleted."""
        ...

    async def check(self) -> None:
        """Raise `ProviderError` when the provider cannot be reached (for `/-/check-up`)."""
        ...

    def personal_link(self, link: str, language: str | None, background: bool) -> str:
        """`link` as one participant should open it: in `language`, with the company's
        virtual background when `background` is true. No I/O: called on every poll."""
        ...

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        """The room as the provider describes it, with camelCase keys (`status`,
        `durationInSeconds`, ...), for GET's `details`."""
        ...

    async def create_credentials(self, provider_user_id: str, expires_in: int) -> Credentials:
        """SDK credentials for a user, valid `expires_in` seconds (within `limits`)."""
        ...

    async def list_uploads(self, provider_room_id: str) -> list[str]:
        """The keys of the files uploaded in a room."""
        ...

    async def delete_upload(self, key: str) -> None:
        """Delete an uploaded file; one already gone counts as deleted."""
        ...

    async def upload_background(self, upload: Upload) -> dict[str, object]:
        """Add a company virtual background; answer `{background_alias, url, creation_date}`."""
        ...

    async def set_default_background(self, alias: str) -> dict[str, object]:
        """Make a background the company default; answer the company as the provider does."""
        ...

    async def close(self) -> None:
        """Release what the provider holds (HTTP sessions); called once at shutdown."""
        ...


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
class ProviderContext:
    """What a provider factory gets to build its provider."""

    settings: Settings
    config: ServiceConfig
    environ: Mapping[str, str]
    """The process environment: a plugin reads its own variables (API keys, URLs) here."""


@dataclass(frozen=True)
class VideoProviderPlugin:
    """A named video provider, registered by `register_video_providers`."""

    name: str
    create: Callable[[ProviderContext], VideoProvider]
    description: str = ""
    link_markers: tuple[str, ...] = ()
    """Path fragments found only in this provider's join links (`/fake-video/join/`): any
    text holding one is redacted from logs, since a link is a bearer credential."""


@dataclass(frozen=True)
class IdentityProviderPlugin:
    """A named identity provider, registered by `register_identity_providers`."""

    name: str
    create: Callable[[ProviderContext], IdentityProvider]
    description: str = ""


async def gather_all(*calls: Awaitable[T]) -> list[T]:
    """Run calls concurrently, wait for every one, then raise the first error, if any.

    Unlike a bare gather, no call is left running unobserved after another failed.
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


def with_query(link: str, params: Mapping[str, str | None]) -> str:
    """`link` with `params` added to its query (None values left out)."""
    url = URL(link)
    given = {name: value for name, value in params.items() if value is not None}
    return str(url.update_query(given)) if given else link


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
HASHED = "h-"
"""Marks a derived id that is a digest: no id kept as it is may start with it."""


def stable_user_id(external_id: str, *, prefix: str = "", max_length: int = 128) -> str:
    """A provider user id derived from an external id, so creating a user is idempotent.

    Injective: two external ids never share a provider user (one participant must
    never get another's link or credentials). Ids within `[A-Za-z0-9._-]` and the
    length limit are kept readable, unless they start with `h-`; every other id
    becomes `h-` and the SHA-256 digest of the external id. A kept id cannot start
    with `h-`, so it can never equal a digest.
    """
    candidate = prefix + external_id
    if (
        not _UNSAFE.search(external_id)
        and not external_id.startswith(HASHED)
        and len(candidate) <= max_length
    ):
        return candidate
    digest = hashlib.sha256(external_id.encode()).hexdigest()
    return (prefix + HASHED + digest)[:max_length]
