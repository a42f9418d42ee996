"""Everything a plugin may use from teleconsult, and nothing more.

A plugin imports from this module only (a test fails when a module under
`plugins/` imports another part of the core). What is here is the contract:

- `hookimpl`, to mark the hook functions a plugin implements (`providers/hookspecs.py`);
- the provider protocols: `VideoProvider` (the room lifecycle every video provider
  offers) and the optional capabilities `RoomDetails`, `SdkCredentials`,
  `Uploads`, `VirtualBackgrounds`, `ProviderEvents` (the provider's own webhooks,
  verified with its scheme, read as `ProviderEvent`s of the kinds `PARTICIPANT_JOINED`,
  `PARTICIPANT_LEFT`, `CALL_STARTED`, `CALL_ENDED` and the lobby's `PARTICIPANT_WAITING`,
  `PARTICIPANT_ADMITTED`, `PARTICIPANT_DECLINED`, refused past `EVENT_MAX_AGE`);
  `LiveConnections` (a provider whose own WebSockets are closed as the server begins
  to stop); `LinkRevocation` (one participant's links revoked: a `Revocation`;
  `UnrevocableLinks` says why a provider cannot); `NamedRooms` (a provider that creates
  rooms under names chosen before the call); `RoomRepair` (one whose media server may
  forget its rooms: the reconciler asks it to make them again); `IdentityProvider`;
  `LiveCalls` (one that counts its calls and pages for the metrics, as
  `CallCounts`); `ProviderContext.report_events`, for a provider that sees joins and leaves itself;
  `ProviderContext.remove_participant`, for a call page that removes a participant;
- the values they exchange, and the records a plugin registers its providers with;
- the errors a provider raises;
- `OutboundClient`, the HTTP transport with timeouts, safe retries and named failures;
- `DeclaredSettings`, `setting` and the value types (`WholeNumber`, `Boolean`, `Names`,
  `HttpsUrl`, `BaseUrl`), to declare a provider's own settings class, named on its
  registration (`NoSettings` for none): its variables are listed by `teleconsult --help`
  and docs/settings.md, read and checked the way the core's are (a secret may come from
  `<NAME>_FILE` and never reaches a log or an error body; URLs must be https), and the
  object is handed to the provider as `ProviderContext.settings`; `ProviderConfig` and
  `UserIdMapping`, the service configuration's values for providers;
- `ProviderStorage` (`ProviderContext.storage`): the provider's documents and mailboxes in
  the service's store, shared by every replica; `RoomRoster` (`ProviderContext.roster`):
  a teleconsultation as the provider's own pages may see it; `stored_state` (both, or the
  configuration error of a provider that needs them);
- small helpers: `stable_user_id`, `with_query`, `gather_all`, `mark_sensitive`, `shape`,
  `page_time` (a moment as the call page's answers write it)
  (an answer's keys and value types, never its values: safe to log);
- `LinkSigner`, `LinkCredential` and `call_links` (its `stored_secret`, `configured_secret`):
  the signed per-participant credential in the links of a provider that serves the call page;
  `check_seat` (whether such a link opens its call now: a `CallSeat` or a `CallRefusal`),
  `seat_of` (the same for a page's request, or the answer that refuses it), `seat_info`
  (what the page shows), `page_tools` (the in-call tools of a participant's level that the
  page offers, of `PAGE_TOOLS`) and `refused` (the answer to a link that opens nothing);
  `join_credential` (the credential of a participant's page link, from its `JoinRequest`)
  `ProviderPages` (a provider's page, info, tools and asset routes, its admission and the
  page's Remove) and `same_origin` (whether a browser's request comes from the page);
- `TokenWindow`: the `nbf`/`exp` of a join token, for providers whose links are signed tokens;
- `VIDEO_PROVIDER`, the app key under which a plugin's own routes find the running provider;
- `CallPage` (`ProviderContext.call_page`), the call page every provider that serves one
  shares: its HTML and UI (a provider adds its transport module as an `Asset`), message
  catalogs and language negotiation, headers (`CONTENT_SECURITY_POLICY` by default) and
  ending pages, and its ICE servers (`CallPage.ice(valid_until)`: STUN, TURN credentials
  bounded by the link's window, `iceTransportPolicy`; `IceServers` builds them for a
  provider's own tests); `default_call_page` for a provider built outside an app.

docs/plugins.md explains each, with a complete minimal plugin.
"""

from __future__ import annotations

from teleconsult.callpage import (
    CONTENT_SECURITY_POLICY,
    Asset,
    BrowserIce,
    CallPage,
    IceServers,
    default_call_page,
)
from teleconsult.callpage import links as call_links
from teleconsult.callpage.links import Credential as LinkCredential
from teleconsult.callpage.links import LinkSigner, join_credential
from teleconsult.callpage.seats import (
    PAGE_TOOLS,
    ProviderPages,
    check_seat,
    page_tools,
    refused,
    same_origin,
    seat_info,
    seat_of,
)
from teleconsult.callpage.seats import Refusal as CallRefusal
from teleconsult.callpage.seats import Seat as CallSeat
from teleconsult.callpage.seats import iso as page_time
from teleconsult.configuration.declarations import (
    BaseUrl,
    Boolean,
    DeclaredSettings,
    HttpsUrl,
    Names,
    NoSettings,
    WholeNumber,
    setting,
)
from teleconsult.configuration.provider_config import ProviderConfig, UserIdMapping
from teleconsult.configuration.tokens import TokenDefaults
from teleconsult.core.attendance_rules import ADMITTED as PARTICIPANT_ADMITTED
from teleconsult.core.attendance_rules import CALL_ENDED, CALL_STARTED
from teleconsult.core.attendance_rules import DECLINED as PARTICIPANT_DECLINED
from teleconsult.core.attendance_rules import JOINED as PARTICIPANT_JOINED
from teleconsult.core.attendance_rules import LEFT as PARTICIPANT_LEFT
from teleconsult.core.attendance_rules import WAITING as PARTICIPANT_WAITING
from teleconsult.core.domain import (
    TOOLS,
    Level,
    ProviderLimits,
    RoomParticipant,
    RoomSpec,
)
from teleconsult.errors import (
    ConfigurationError,
    Forbidden,
    InvalidRequest,
    NotFound,
    ProviderError,
    ProviderFailure,
    ServiceError,
    Unauthorized,
    UnexpectedAnswer,
    VersionConflict,
)
from teleconsult.observability.redaction import sensitive as mark_sensitive
from teleconsult.providers.helpers import (
    TokenWindow,
    gather_all,
    shape,
    stable_user_id,
    with_query,
)
from teleconsult.providers.hookspecs import hookimpl
from teleconsult.providers.live import CallCounts, LiveCalls, LiveConnections, RoomRepair
from teleconsult.providers.outbound import Answer, CallPolicy, OutboundClient, error_message
from teleconsult.providers.protocols import (
    EVENT_MAX_AGE,
    Caller,
    CreatedRoom,
    Credentials,
    Identity,
    IdentityProvider,
    IdentityProviderPlugin,
    JoinRequest,
    LinkRevocation,
    NamedRooms,
    ParticipantEntry,
    ProviderContext,
    ProviderEvent,
    ProviderEvents,
    RemoveParticipant,
    ReportEvents,
    Revocation,
    RoomDetails,
    SdkCredentials,
    UnrevocableLinks,
    Upload,
    Uploads,
    VideoProvider,
    VideoProviderPlugin,
    VirtualBackgrounds,
)
from teleconsult.providers.storage import (
    ProviderStorage,
    RoomRoster,
    Roster,
    RosterEntry,
    StoredDocument,
    stored_state,
)
from teleconsult.services import VIDEO_PROVIDER

__all__ = [
    "CALL_ENDED",
    "CALL_STARTED",
    "CONTENT_SECURITY_POLICY",
    "EVENT_MAX_AGE",
    "PAGE_TOOLS",
    "PARTICIPANT_ADMITTED",
    "PARTICIPANT_DECLINED",
    "PARTICIPANT_JOINED",
    "PARTICIPANT_LEFT",
    "PARTICIPANT_WAITING",
    "TOOLS",
    "VIDEO_PROVIDER",
    "Answer",
    "Asset",
    "BaseUrl",
    "Boolean",
    "BrowserIce",
    "CallCounts",
    "CallPage",
    "CallPolicy",
    "CallRefusal",
    "CallSeat",
    "Caller",
    "ConfigurationError",
    "CreatedRoom",
    "Credentials",
    "DeclaredSettings",
    "Forbidden",
    "HttpsUrl",
    "IceServers",
    "Identity",
    "IdentityProvider",
    "IdentityProviderPlugin",
    "InvalidRequest",
    "JoinRequest",
    "Level",
    "LinkCredential",
    "LinkRevocation",
    "LinkSigner",
    "LiveCalls",
    "LiveConnections",
    "NamedRooms",
    "Names",
    "NoSettings",
    "NotFound",
    "OutboundClient",
    "ParticipantEntry",
    "ProviderConfig",
    "ProviderContext",
    "ProviderError",
    "ProviderEvent",
    "ProviderEvents",
    "ProviderFailure",
    "ProviderLimits",
    "ProviderPages",
    "ProviderStorage",
    "RemoveParticipant",
    "ReportEvents",
    "Revocation",
    "RoomDetails",
    "RoomParticipant",
    "RoomRepair",
    "RoomRoster",
    "RoomSpec",
    "Roster",
    "RosterEntry",
    "SdkCredentials",
    "ServiceError",
    "StoredDocument",
    "TokenDefaults",
    "TokenWindow",
    "Unauthorized",
    "UnexpectedAnswer",
    "UnrevocableLinks",
    "Upload",
    "Uploads",
    "UserIdMapping",
    "VersionConflict",
    "VideoProvider",
    "VideoProviderPlugin",
    "VirtualBackgrounds",
    "WholeNumber",
    "call_links",
    "check_seat",
    "default_call_page",
    "error_message",
    "gather_all",
    "hookimpl",
    "join_credential",
    "mark_sensitive",
    "page_time",
    "page_tools",
    "refused",
    "same_origin",
    "seat_info",
    "seat_of",
    "setting",
    "shape",
    "stable_user_id",
    "stored_state",
    "with_query",
]
