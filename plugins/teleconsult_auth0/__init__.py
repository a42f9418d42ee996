"""Identity provider `auth0`: participants' groups and names come from Auth0, not the caller.

Selected with IDENTITY_PROVIDER=auth0, the default whenever AUTH_SERVICE or
AUTH0_DOMAIN is set. Users are looked up through the platform's auth0-client
service (AUTH_SERVICE) or directly through the Auth0 Management API
(AUTH0_DOMAIN, AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET). Callers send user ids
only: a request that supplies `groups`, `group` or `fullName` is refused, so
nobody can pick a participant's role. Ids in another form (a database `_id`, an
email) are resolved through CUSTOM_ID_USERS_API_ENDPOINT, when it is set, to the
id Auth0 is asked about; the participant keeps the id as given, since that is
the form its own requests carry.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from teleconsult.plugin import (
    Caller,
    CallPolicy,
    ConfigurationError,
    DeclaredSettings,
    Identity,
    IdentityProviderPlugin,
    InvalidRequest,
    Names,
    OutboundClient,
    ParticipantEntry,
    ProviderContext,
    TokenDefaults,
    UnexpectedAnswer,
    WholeNumber,
    gather_all,
    hookimpl,
    setting,
)
from teleconsult_auth0.directories import (
    Auth0ClientDirectory,
    Directory,
    ManagementApiDirectory,
    ManagementCredentials,
    UserRecord,
    ratelimit_reset_wait,
)

NAME = "auth0"


class Auth0Settings(DeclaredSettings):
    """The provider's variables, with their defaults and meanings (rows of docs/settings.md)."""

    auth_service: str = setting(
        "AUTH_SERVICE",
        "",
        "`auth0` provider: host of the platform's auth0-client service (`http://<AUTH_SERVICE>`); "
        "preferred over `AUTH0_DOMAIN` when both are set",
    )
    auth_service_user_path: str = setting(
        "AUTH_SERVICE_USER_PATH",
        "/users/{userId}",
        "`auth0` provider: the auth0-client path that answers a user",
    )
    default_client_type: str = setting(
        "DEFAULT_CLIENT_TYPE",
        "",
        "`auth0` provider: `client-type` sent to auth0-client when the request has none",
    )
    additional_headers_to_proxy: Names = setting(
        "ADDITIONAL_HEADERS_TO_PROXY",
        frozenset(),
        "`auth0` provider: comma-separated request headers forwarded to auth0-client",
    )
    domain: str = setting(
        "AUTH0_DOMAIN",
        "",
        "`auth0` provider: the Auth0 tenant, reached directly through the Management API",
    )
    client_id: str = setting(
        "AUTH0_CLIENT_ID",
        "",
        "`auth0` provider with `AUTH0_DOMAIN`: a machine-to-machine application allowed to read "
        "users",
    )
    client_secret: str = setting(
        "AUTH0_CLIENT_SECRET",
        "",
        "`auth0` provider with `AUTH0_DOMAIN`: that application's secret (never logged)",
        secret=True,
    )
    base_url: str = setting(
        "AUTH0_BASE_URL",
        "",
        "`auth0` provider: the Management API's address; unset = `https://<AUTH0_DOMAIN>`",
    )
    groups_source: str = setting(
        "AUTH0_GROUPS_SOURCE",
        "app_metadata",
        "`auth0` provider: `app_metadata` (groups in `app_metadata.groups`) or `roles` (the "
        "user's Auth0 role names)",
    )
    cache_ttl_ms: WholeNumber = setting(
        "AUTH0_CACHE_TTL_MS",
        60_000,
        "`auth0` provider: how long a looked-up user is reused, to spare the tenant's quota",
        minimum=0,
    )
    timeout_ms: WholeNumber = setting(
        "AUTH0_TIMEOUT_MS",
        5000,
        "`auth0` provider: timeout of each call to auth0-client, the Management API or the "
        "custom id endpoint",
        minimum=0,
    )
    custom_id_users_api_endpoint: str = setting(
        "CUSTOM_ID_USERS_API_ENDPOINT",
        "",
        "`auth0` provider: a CRUD of users that resolves participant ids given in another form "
        "(`GET <endpoint>?<customUserId.source>=<id>`, reading `customUserId.target`)",
    )

    def check(self) -> None:
        """Without auth0-client, the Management API's variables (as `create` reads them)."""
        if not self.auth_service:
            self.management_api()

    def management_api(self) -> tuple[ManagementCredentials, bool, str]:
        """The Management API's credentials, whether groups are role names, and its address."""
        if not self.domain:
            raise ConfigurationError(
                "IDENTITY_PROVIDER=auth0 needs AUTH_SERVICE (the auth0-client host) or "
                "AUTH0_DOMAIN with AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET."
            )
        if not self.client_id or not self.client_secret:
            raise ConfigurationError(
                "AUTH0_DOMAIN needs AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (a machine-to-machine "
                "application allowed to read users)."
            )
        if self.groups_source not in ("app_metadata", "roles"):
            raise ConfigurationError(
                f"AUTH0_GROUPS_SOURCE must be app_metadata or roles; got {self.groups_source!r}."
            )
        credentials = ManagementCredentials(
            domain=self.domain, client_id=self.client_id, client_secret=self.client_secret
        )
        base_url = self.base_url or f"https://{self.domain}"
        return credentials, self.groups_source == "roles", base_url


CACHE_SIZE = 10_000


class CustomIdResolver:
    """Turns an id in another form into the identity provider's id (`customUserId`)."""

    def __init__(self, http: OutboundClient, source: str, target: str) -> None:
        self.http = http
        self.source = source
        self.target = target

    async def resolve(self, custom_id: str) -> str | None:
        operation = "resolve a custom user id"
        answer = await self.http.call(
            operation, "GET", "", params={self.source: custom_id}, safe=True, also_ok={404}
        )
        if answer.status == 404:
            return None
        return self.http.read(operation, answer, self._target_of)

    def _target_of(self, body: object) -> str | None:
        records = body if isinstance(body, list) else [body]
        for record in records:
            if not isinstance(record, dict):
                raise UnexpectedAnswer("expected user records")
            value = record.get(self.target)
            if isinstance(value, str) and value:
                return value
        return None

    async def close(self) -> None:
        await self.http.close()


class Auth0Identity:
    name = NAME

    def __init__(
        self, directory: Directory, resolver: CustomIdResolver | None, cache_ttl_seconds: float
    ) -> None:
        self.directory = directory
        self.resolver = resolver
        self.cache_ttl_seconds = cache_ttl_seconds
        self._cache: OrderedDict[str, tuple[float, UserRecord]] = OrderedDict()

    @property
    def resolves_bare_ids(self) -> bool:
        return True

    async def identify(self, entries: Sequence[ParticipantEntry], caller: Caller) -> list[Identity]:
        for entry in entries:
            for given, field_name in ((entry.groups, "groups"), (entry.full_name, "fullName")):
                if given is not None:
                    raise InvalidRequest(
                        f"{entry.path}.{field_name} is not accepted with the auth0 identity "
                        "provider: groups and names come from Auth0. Send userExternalId "
                        "(and language) only.",
                        path=f"{entry.path}.{field_name}",
                    )
        return await gather_all(*(self._identity(entry, caller) for entry in entries))

    async def _identity(self, entry: ParticipantEntry, caller: Caller) -> Identity:
        user_id = entry.external_id
        if self.resolver is not None:
            resolved = await self.resolver.resolve(user_id)
            if resolved is None:
                raise InvalidRequest(
                    f"Participant {user_id!r}: no user has {self.resolver.source} {user_id!r}.",
                    path=entry.path,
                )
            user_id = resolved
        record = self._cached(user_id) or await self.directory.find(user_id, caller)
        if record is None:
            raise InvalidRequest(
                f"Participant {user_id!r} is not a user known to Auth0.", path=entry.path
            )
        self._remember(record)
        # The participant keeps the id in the form given, which is the form callers present.
        return Identity(external_id=entry.external_id, groups=record.groups, full_name=record.name)

    def _cached(self, user_id: str) -> UserRecord | None:
        found = self._cache.get(user_id)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def _remember(self, record: UserRecord) -> None:
        self._cache[record.user_id] = (time.monotonic() + self.cache_ttl_seconds, record)
        self._cache.move_to_end(record.user_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def close(self) -> None:
        await self.directory.close()
        if self.resolver is not None:
            await self.resolver.close()


def _base_url(value: str) -> str:
    return value if value.startswith(("http://", "https://")) else f"http://{value}"


def directory_from(settings: Auth0Settings, session_for: Any) -> Directory:
    """The directory the settings name: auth0-client first (the original's), else Auth0."""
    policy = CallPolicy(timeout_seconds=settings.timeout_ms / 1000)
    if settings.auth_service:
        return Auth0ClientDirectory(
            OutboundClient("auth0-client", session_for(), _base_url(settings.auth_service), policy),
            user_path=settings.auth_service_user_path,
            default_client_type=settings.default_client_type or None,
            proxied_headers=sorted(
                header.lower() for header in settings.additional_headers_to_proxy
            ),
        )
    credentials, groups_from_roles, base_url = settings.management_api()
    return ManagementApiDirectory(
        OutboundClient(NAME, session_for(), base_url, policy, rate_limit_wait=ratelimit_reset_wait),
        credentials,
        groups_from_roles=groups_from_roles,
    )


def create(context: ProviderContext[Auth0Settings]) -> Auth0Identity:
    settings = context.settings
    directory = directory_from(settings, aiohttp.ClientSession)
    resolver = None
    if settings.custom_id_users_api_endpoint:
        mapping = context.provider_config.user_id_mapping
        resolver = CustomIdResolver(
            OutboundClient(
                "custom user ids",
                aiohttp.ClientSession(),
                _base_url(settings.custom_id_users_api_endpoint),
                CallPolicy(timeout_seconds=settings.timeout_ms / 1000),
            ),
            source=mapping.source,
            target=mapping.target,
        )
    return Auth0Identity(directory, resolver, settings.cache_ttl_ms / 1000)


def token_defaults(environ: Mapping[str, str]) -> TokenDefaults | None:
    """An Auth0 tenant publishes its token signing keys and names itself the issuer."""
    domain = environ.get("AUTH0_DOMAIN", "").strip()
    if not domain:
        return None
    return TokenDefaults(f"https://{domain}/.well-known/jwks.json", f"https://{domain}/")


@hookimpl
def register_identity_providers() -> list[IdentityProviderPlugin[Auth0Settings]]:
    return [
        IdentityProviderPlugin(
            name=NAME,
            create=create,
            description="Groups and names from Auth0 (auth0-client service or Management API).",
            settings=Auth0Settings,
            # As for the original: an auth0-client host or an Auth0 tenant means auth0.
            chosen_by=("AUTH_SERVICE", "AUTH0_DOMAIN"),
            token_defaults=token_defaults,
        )
    ]
