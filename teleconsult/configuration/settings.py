"""Environment variables, parsed once at start into a frozen `Settings`.

A bad value raises `ConfigurationError` with one line that names the variable;
the CLI prints that line and exits. `SETTINGS` declares every core variable with
its default and meaning: the README's table and `teleconsult --help` show them
(a test compares the README with the declarations).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from teleconsult.configuration import catalog
from teleconsult.configuration.catalog import FILE_SUFFIX, Setting
from teleconsult.core.domain import RECORDING_TYPES, RoomPolicy
from teleconsult.errors import ConfigurationError
from teleconsult.observability import redaction

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "silent")
SQLITE_SYNCHRONOUS_MODES = ("full", "normal", "extra")
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_IMMUTABLE_PERIOD_MS = 30 * 24 * 3600 * 1000
"""Thirty days: a window longer than that is a typo (and would overflow date arithmetic)."""
JWKS_TTL_FLOOR_MS = 30_000
"""The token signing keys are fetched at most this often (a flood of forged `kid`s, or a JWKS
saying `max-age=0`, is no flood of fetches): a shorter JWT_JWKS_TTL_MS could not be kept."""

SETTINGS: tuple[Setting, ...] = (
    Setting("HTTP_HOST", "127.0.0.1", "address to listen on (`0.0.0.0` in a container)"),
    Setting("HTTP_PORT", "3000", "port to listen on"),
    Setting(
        "LOG_LEVEL",
        "info",
        "`trace`, `debug`, `info`, `warn`, `error` or `silent`; logs are JSON lines on stdout",
    ),
    Setting(
        "STORE_URL",
        "sqlite:///teleconsult.db",
        "the store: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (the default is a "
        "file in the working directory, created on first start), or MongoDB: "
        "`mongodb://user:password@host:27017/teleconsult?replicaSet=rs0`, `mongodb+srv://...`",
        secret=True,
    ),
    Setting("MONGODB_DATABASE", "", "MongoDB database; unset = the URL's path, else `teleconsult`"),
    Setting(
        "MONGODB_TIMEOUT_MS",
        "5000",
        "how long a request's MongoDB calls, together, wait for a server before the request gets "
        "a 503; once a call found no server, requests get a 503 with `Retry-After` at once "
        "until a ping (every second in the background, and `/-/ready`) reaches one",
    ),
    Setting(
        "VIDEO_PROVIDER",
        "webrtc",
        "name of the video provider plugin to use: `webrtc` (calls served by teleconsult itself), "
        "`bandyer` (Kaleyra Video), `livekit`, `jitsi` or `fake` (in memory, for tests; see "
        '"Video providers"); when unset and '
        "`BANDYER_API_SECRET_KEY` (or `BANDYER_API_SECRET_KEY_FILE`) is set, `bandyer`",
    ),
    Setting(
        "IDENTITY_PROVIDER",
        "static",
        "name of the identity provider plugin to use: `static` or `auth0`; when unset and "
        "`AUTH_SERVICE` or `AUTH0_DOMAIN` is set, `auth0`",
    ),
    Setting(
        "TELECONSULTATION_SERVICE_CONFIG_PATH",
        "",
        "JSON service configuration file; unset = the built-in default (README, "
        '"Service configuration file")',
    ),
    Setting(
        "TELECONSULTATIONS_CRUD_NAME",
        "teleconsultations",
        "collection (table) of teleconsultations",
    ),
    Setting(
        "USER_ID_MAP_CRUD_NAME",
        "users",
        "collection (table) of the user map; `USER_MAP_ID_CRUD_NAME`, the original docs' other "
        "spelling, is read too",
        aliases=("USER_MAP_ID_CRUD_NAME",),
    ),
    Setting(
        "UNLIMITED_TELECONSULTATION",
        "true",
        "rooms without a duration; `false` gives rooms `end_date - start_date` (300 s to 24 h)",
    ),
    Setting(
        "LIVE_TELECONSULTATION",
        "true",
        "the call ends when fewer than two participants remain (passed to the provider)",
    ),
    Setting(
        "IMMUTABLE_PERIOD_MS",
        "0",
        "the immutable window: how long before `start_date` a complete teleconsultation locks and "
        "links are handed out",
    ),
    Setting(
        "TELECONSULTATION_DELETE_UPLOADS",
        "false",
        "`DELETE /teleconsultation/{roomId}/uploads` really deletes the room's files (else it "
        "answers 204 and does nothing)",
    ),
    Setting(
        "DEFAULT_RECORDING_TYPE",
        "none",
        "`none`, `manual` or `automatic`, passed to new rooms",
    ),
    Setting(
        "USERID_HEADER_KEY",
        "miauserid",
        "the header that holds the caller's id (when `userIdPathInRequest` is not configured)",
    ),
    Setting(
        "JWT_AUDIENCE",
        "",
        "turns on bearer-token verification: the caller is the token's subject, not a header; a "
        "missing or invalid token is a 401",
    ),
    Setting(
        "JWT_JWKS_URL",
        "",
        "where the token signing keys are (RS256, chosen by `kid`); with `AUTH0_DOMAIN`, "
        "`https://<AUTH0_DOMAIN>/.well-known/jwks.json`",
    ),
    Setting(
        "JWT_ISSUER",
        "",
        "the `iss` tokens must carry; with `AUTH0_DOMAIN`, `https://<AUTH0_DOMAIN>/`",
    ),
    Setting("JWT_USER_ID_CLAIM", "sub", "the token claim that holds the caller's id"),
    Setting(
        "JWT_GROUPS_CLAIM",
        "groups",
        "the token claim that holds the caller's groups (for `MANAGER_GROUPS`)",
    ),
    Setting(
        "JWT_JWKS_TTL_MS",
        "600000",
        "how long fetched token signing keys are trusted (less when the JWKS answer's "
        "`Cache-Control: max-age` says so, never less than 30 s; a smaller value stops the "
        "start): a key removed from the JWKS stops verifying within this time. The keys are "
        "fetched again in the background after half of it, while the old ones serve; if the "
        "JWKS cannot be fetched, the old keys serve one more interval at most",
    ),
    Setting(
        "MANAGER_GROUPS",
        "",
        "comma-separated groups; when set, `POST`, `PATCH` and `DELETE` on teleconsultations need "
        "a caller in one of them (else 403); its members may also list anyone's teleconsultations "
        "and read audit trails (nobody may while it is unset)",
    ),
    Setting(
        "ADMIN_GROUPS",
        "",
        "comma-separated groups whose members may change and cancel any teleconsultation; any "
        "other identified caller only those they created or take part in as a `plus` participant "
        "(else 403); only its identified members may make the operator calls (`/webhooks/failed`, "
        "`/settings/...`), and nobody while it is unset",
    ),
    Setting(
        "ALLOW_ANONYMOUS_WRITES",
        "false",
        "`true`: callers who do not say who they are (no `miauserid`, no token) may create, change "
        "and cancel any teleconsultation, as with the original; only behind a gateway that "
        "authenticates every write but does not pass the caller on (README, migration notes)",
    ),
    Setting(
        "GROUPS_HEADER_KEY",
        "miausergroups",
        "the header with the caller's comma-separated groups, read for `MANAGER_GROUPS` when "
        "tokens are not verified",
    ),
    Setting(
        "IDEMPOTENCY_KEY_TTL_MS",
        "86400000",
        "how long an `Idempotency-Key` (on `POST /teleconsultation` and `POST "
        ".../participants/data`) keeps its first answer: a day",
    ),
    Setting(
        "IDEMPOTENCY_MAX_KEYS_PER_CALLER",
        "10000",
        "how many unexpired `Idempotency-Key`s one caller may hold; a keyed request beyond that is"
        " a 429 (callers who do not say who they are share one allowance)",
    ),
    Setting(
        "HTTP_READ_TIMEOUT_MS",
        "30000",
        "how long a client may take to send a request's headers (from the moment it connects or "
        "got its last answer) and, separately, its body (else 408); an idle keep-alive connection "
        "is closed after the same time, so keep it above your load balancer's idle timeout",
    ),
    Setting(
        "SQLITE_BUSY_TIMEOUT_MS",
        "5000",
        "how long a request's SQLite calls, together, wait for the file's write lock while "
        "another process holds it (another replica on the host, a backup) before the request "
        "gets a 503",
    ),
    Setting(
        "SQLITE_SYNCHRONOUS",
        "full",
        "SQLite's `synchronous` mode: `full` (every acknowledged write survives a power failure), "
        "`normal` (faster; survives a crash of the process, but a power failure may lose the last "
        "writes) or `extra`",
    ),
    Setting(
        "RECONCILE_INTERVAL_MS",
        "10000",
        "how often each replica's reconciler looks for room work left over (orphan rooms to "
        "delete); `0` turns it off",
    ),
    Setting(
        "CORS_ALLOWED_ORIGINS",
        "",
        "comma-separated origins (`https://app.example.org`: scheme, host, port if not the "
        "default; no path, no `*`; `http` for a loopback host only) whose pages may call the API "
        "from a browser; unset = same-origin only; never with credentials (cookies); leave it "
        "unset behind a gateway that answers CORS itself",
    ),
    Setting(
        "WEBHOOK_URL",
        "",
        'where each change\'s signed events are sent (README, "Webhooks"): an https URL (http '
        "for a loopback host only); unset = none (endpoints with event filters can be listed in "
        "the service configuration file's `webhooks`)",
    ),
    Setting(
        "WEBHOOK_SECRET",
        "",
        "the Standard Webhooks signing secret: `whsec_` and 24 to 64 random bytes in base64 "
        "(`echo whsec_$(openssl rand -base64 32)`); needed by `WEBHOOK_URL` and by configured "
        "endpoints without a `secretFile` (never logged)",
        secret=True,
    ),
    Setting(
        "WEBHOOK_TIMEOUT_MS",
        "5000",
        "how long a webhook receiver may take to answer a delivery before it counts as failed "
        "(and is retried)",
    ),
    Setting(
        "WEBHOOK_MAX_AGE_MS",
        "86400000",
        "how long an event is retried, with exponential backoff and jitter, before it is marked "
        "failed (listed by `GET /webhooks/failed`): a day",
    ),
    Setting(
        "WEBHOOK_POLL_INTERVAL_MS",
        "1000",
        "how often each replica looks in the store for events to deliver (events made by the "
        "replica itself go out at once); `0`: this replica delivers none",
    ),
    Setting(
        "TRUSTED_PROXIES",
        "",
        "comma-separated CIDRs (`10.0.0.0/8, 192.168.1.7/32`) of the proxies in front: only when "
        "the direct peer is in one is `X-Forwarded-For` believed for the client address the audit "
        "trail records (the rightmost address not in them); else the peer's address is recorded",
    ),
    Setting(
        "RETENTION_TRASHED_DAYS",
        "30",
        "days after its cancellation that a cancelled teleconsultation is deleted for good (by the "
        "reconciler's retention pass); `0` deletes it at the next pass",
    ),
    Setting(
        "RETENTION_ENDED_DAYS",
        "",
        "days after its end that a teleconsultation is deleted for good; unset keeps them",
    ),
    Setting(
        "AUDIT_RETENTION_DAYS",
        "365",
        "how long audit-trail entries (links and credentials handed out, changes) are kept",
    ),
    Setting(
        "WEBHOOK_RETENTION_DAYS",
        "30",
        "days after it finished that a webhook delivery (its payload: ids, states, times, provider "
        "user ids) is deleted for good by the retention pass: a failed one stays that long for "
        "`POST /webhooks/failed/{id}/retry`; a delivered or withdrawn one goes after "
        "`WEBHOOK_MAX_AGE_MS` if that is shorter (1 to 36500)",
    ),
    Setting(
        "NO_SHOW_AFTER_MS",
        "600000",
        "a participant who has not joined the call this long after `start_date` is reported by "
        "a `call.no_show` event: ten minutes",
    ),
    Setting(
        "WAIT_REFRESH_MS",
        "1000",
        "while `GET ?waitSeconds=` requests wait, how often each replica reads the versions of "
        "their teleconsultations (one query for all) to see changes made by other replicas; "
        "its own changes and lock times wake them at once",
    ),
    Setting(
        "SHUTDOWN_GRACE_MS",
        "25000",
        "on SIGTERM, how long in-flight requests may take to finish before the store and sessions "
        "close (keep it below Kubernetes' `terminationGracePeriodSeconds`)",
    ),
)
"""Every core variable: its default and what it means, as the README's table and
`teleconsult --help` show them (a test compares the README with this)."""
DEFAULTS = catalog.defaults(SETTINGS)
"""Each core variable's default, by name."""
MAX_SECRET_FILE_BYTES = 64 * 1024
"""A secret file larger than this is not a secret file (a key in PEM form is a few KB)."""


@dataclass(frozen=True)
class Settings:
    http_host: str
    http_port: int
    log_level: str
    store_url: str
    mongodb_database: str | None
    mongodb_timeout_ms: int
    video_provider: str
    identity_provider: str
    service_config_path: Path | None
    teleconsultations_collection: str
    user_map_collection: str
    unlimited_teleconsultation: bool
    live_teleconsultation: bool
    immutable_period_ms: int
    default_recording_type: str
    delete_uploads: bool
    userid_header_key: str
    shutdown_grace_ms: int
    idempotency_key_ttl_ms: int
    reconcile_interval_ms: int
    jwt_jwks_url: str | None
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_user_id_claim: str
    jwt_groups_claim: str
    jwt_jwks_ttl_ms: int
    manager_groups: frozenset[str]
    admin_groups: frozenset[str]
    allow_anonymous_writes: bool
    groups_header_key: str
    idempotency_max_keys_per_caller: int
    http_read_timeout_ms: int
    sqlite_busy_timeout_ms: int
    sqlite_synchronous: str
    cors_allowed_origins: frozenset[str]
    webhook_url: str | None
    webhook_secret: str | None
    webhook_timeout_ms: int
    webhook_max_age_ms: int
    webhook_poll_interval_ms: int
    trusted_proxies: tuple[IPNetwork, ...]
    audit_retention_days: int
    webhook_retention_days: int
    retention_trashed_days: int
    retention_ended_days: int | None
    no_show_after_ms: int
    wait_refresh_ms: int

    @property
    def verifies_tokens(self) -> bool:
        return self.jwt_audience is not None

    @property
    def room_policy(self) -> RoomPolicy:
        return RoomPolicy(
            unlimited=self.unlimited_teleconsultation,
            live=self.live_teleconsultation,
            recording=self.default_recording_type,
            immutable_period=timedelta(milliseconds=self.immutable_period_ms),
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        reader = SettingsReader(environ, DEFAULTS)
        jwks_url, audience, issuer = _token_settings(
            reader, environ.get("AUTH0_DOMAIN", "").strip()
        )
        user_map = environ.get("USER_ID_MAP_CRUD_NAME") or environ.get("USER_MAP_ID_CRUD_NAME")
        config_path = reader.text("TELECONSULTATION_SERVICE_CONFIG_PATH")
        store_url = reader.secret("STORE_URL")
        webhook_url = reader.url("WEBHOOK_URL", strip_slash=False) or None
        webhook_secret = reader.secret("WEBHOOK_SECRET") or None
        if webhook_secret is not None:
            check_webhook_secret("WEBHOOK_SECRET", webhook_secret)
        elif webhook_url is not None:
            raise ConfigurationError(
                "WEBHOOK_URL needs WEBHOOK_SECRET, the key its events are signed with."
            )
        with contextlib.suppress(ValueError):
            redaction.add_secret(urlsplit(store_url).password)  # mongodb://user:<password>@host
        return cls(
            http_host=reader.text("HTTP_HOST"),
            http_port=reader.integer("HTTP_PORT", minimum=0, maximum=65535),
            log_level=reader.choice("LOG_LEVEL", LOG_LEVELS),
            store_url=store_url,
            mongodb_database=reader.text("MONGODB_DATABASE") or None,
            mongodb_timeout_ms=reader.integer("MONGODB_TIMEOUT_MS", minimum=1, maximum=600_000),
            video_provider=reader.text(
                "VIDEO_PROVIDER",
                # A Kaleyra key says which provider is meant, as it did for the original.
                default="bandyer"
                if environ.get("BANDYER_API_SECRET_KEY")
                or environ.get("BANDYER_API_SECRET_KEY" + FILE_SUFFIX)
                else None,
            ),
            identity_provider=reader.text(
                "IDENTITY_PROVIDER",
                # As for the original: an auth0-client host or an Auth0 tenant means auth0.
                default="auth0"
                if environ.get("AUTH_SERVICE") or environ.get("AUTH0_DOMAIN")
                else None,
            ),
            service_config_path=Path(config_path) if config_path else None,
            teleconsultations_collection=reader.collection("TELECONSULTATIONS_CRUD_NAME"),
            user_map_collection=reader.collection("USER_ID_MAP_CRUD_NAME", user_map),
            unlimited_teleconsultation=reader.boolean("UNLIMITED_TELECONSULTATION"),
            live_teleconsultation=reader.boolean("LIVE_TELECONSULTATION"),
            immutable_period_ms=reader.integer(
                "IMMUTABLE_PERIOD_MS", minimum=0, maximum=MAX_IMMUTABLE_PERIOD_MS
            ),
            default_recording_type=reader.choice("DEFAULT_RECORDING_TYPE", RECORDING_TYPES),
            delete_uploads=reader.boolean("TELECONSULTATION_DELETE_UPLOADS"),
            userid_header_key=reader.header_name("USERID_HEADER_KEY"),
            shutdown_grace_ms=reader.integer("SHUTDOWN_GRACE_MS", minimum=0, maximum=3_600_000),
            reconcile_interval_ms=reader.integer(
                "RECONCILE_INTERVAL_MS", minimum=0, maximum=3_600_000
            ),
            idempotency_key_ttl_ms=reader.integer(
                "IDEMPOTENCY_KEY_TTL_MS", minimum=1000, maximum=30 * 24 * 3600 * 1000
            ),
            jwt_jwks_url=jwks_url,
            jwt_audience=audience,
            jwt_issuer=issuer,
            jwt_user_id_claim=reader.text("JWT_USER_ID_CLAIM"),
            jwt_groups_claim=reader.text("JWT_GROUPS_CLAIM"),
            jwt_jwks_ttl_ms=reader.integer(
                "JWT_JWKS_TTL_MS", minimum=JWKS_TTL_FLOOR_MS, maximum=86_400_000
            ),
            manager_groups=reader.names("MANAGER_GROUPS"),
            admin_groups=reader.names("ADMIN_GROUPS"),
            allow_anonymous_writes=reader.boolean("ALLOW_ANONYMOUS_WRITES"),
            groups_header_key=reader.header_name("GROUPS_HEADER_KEY"),
            idempotency_max_keys_per_caller=reader.integer(
                "IDEMPOTENCY_MAX_KEYS_PER_CALLER", minimum=1, maximum=10_000_000
            ),
            http_read_timeout_ms=reader.integer(
                "HTTP_READ_TIMEOUT_MS", minimum=1000, maximum=3_600_000
            ),
            sqlite_busy_timeout_ms=reader.integer(
                "SQLITE_BUSY_TIMEOUT_MS", minimum=1, maximum=600_000
            ),
            sqlite_synchronous=reader.choice("SQLITE_SYNCHRONOUS", SQLITE_SYNCHRONOUS_MODES),
            cors_allowed_origins=reader.origins("CORS_ALLOWED_ORIGINS"),
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_timeout_ms=reader.integer("WEBHOOK_TIMEOUT_MS", minimum=100, maximum=60_000),
            webhook_max_age_ms=reader.integer(
                "WEBHOOK_MAX_AGE_MS", minimum=1000, maximum=30 * 24 * 3600 * 1000
            ),
            webhook_poll_interval_ms=reader.integer(
                "WEBHOOK_POLL_INTERVAL_MS", minimum=0, maximum=3_600_000
            ),
            trusted_proxies=reader.networks("TRUSTED_PROXIES"),
            audit_retention_days=reader.integer("AUDIT_RETENTION_DAYS", minimum=1, maximum=36500),
            webhook_retention_days=reader.integer(
                "WEBHOOK_RETENTION_DAYS", minimum=1, maximum=36500
            ),
            retention_trashed_days=reader.integer(
                "RETENTION_TRASHED_DAYS", minimum=0, maximum=36500
            ),
            retention_ended_days=reader.integer("RETENTION_ENDED_DAYS", minimum=0, maximum=36500)
            if reader.text("RETENTION_ENDED_DAYS")
            else None,
            no_show_after_ms=reader.integer(
                "NO_SHOW_AFTER_MS", minimum=0, maximum=24 * 3600 * 1000
            ),
            wait_refresh_ms=reader.integer("WAIT_REFRESH_MS", minimum=10, maximum=60_000),
        )


def placeholder_variables(
    environ: Mapping[str, str], secrets: Iterable[str] = ()
) -> tuple[str, ...]:
    """The variables still set to a placeholder (`CHANGE_ME`, `changeme`, `<change-me>`...),
    and the `<NAME>_FILE` of each secret in `secrets` whose file holds one (as a mounted
    Secret made from the shipped examples would): a replica that runs with one is not
    ready, so an example deployed as shipped serves nothing rather than failing on every
    call. A file that cannot be read is not judged here: reading the secret says why."""
    found = {name for name, value in environ.items() if _is_placeholder(value)}
    for name in secrets:
        variable = name + FILE_SUFFIX
        path = environ.get(variable, "").strip()
        if path and variable not in found:
            with contextlib.suppress(ConfigurationError):
                if _is_placeholder(_secret_file(variable, path)):
                    found.add(variable)
    return tuple(sorted(found))


def _is_placeholder(value: str) -> bool:
    return "".join(c for c in value.upper() if c.isalnum()) == "CHANGEME"


def whole_number(name: str, text: str, *, minimum: int, maximum: int | None = None) -> int:
    """The variable `name`'s value `text` as a bounded integer, or one line saying what is wrong.

    Plugins read their own numeric variables with it, so every setting fails alike.
    """
    try:
        number = int(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number; got {text!r}.") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise ConfigurationError(f"{name} must be at least {minimum}{upper}; got {number}.")
    return number


def _token_settings(
    reader: SettingsReader, auth0_domain: str
) -> tuple[str | None, str | None, str | None]:
    """Bearer-token verification: on when JWT_AUDIENCE is set; AUTH0_DOMAIN gives the defaults."""
    audience = reader.text("JWT_AUDIENCE") or None
    jwks_url = reader.text("JWT_JWKS_URL") or None
    issuer = reader.text("JWT_ISSUER") or None
    if audience is None:
        if jwks_url is not None:
            raise ConfigurationError("JWT_JWKS_URL needs JWT_AUDIENCE, the audience tokens carry.")
        return None, None, None
    if auth0_domain:
        jwks_url = jwks_url or f"https://{auth0_domain}/.well-known/jwks.json"
        issuer = issuer or f"https://{auth0_domain}/"
    if jwks_url is None:
        raise ConfigurationError("JWT_AUDIENCE needs JWT_JWKS_URL (or AUTH0_DOMAIN).")
    if issuer is None:
        raise ConfigurationError("JWT_AUDIENCE needs JWT_ISSUER (or AUTH0_DOMAIN).")
    return jwks_url, audience, issuer


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105  # the form's prefix, not a secret


def check_webhook_secret(origin: str, secret: str) -> None:
    """A Standard Webhooks secret: `whsec_` and 24 to 64 bytes in base64. The error names
    where the secret came from, never the secret."""
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True) if body != secret else b""
    except binascii.Error:
        key = b""
    if not 24 <= len(key) <= 64:
        raise ConfigurationError(
            f"{origin} must be {WEBHOOK_SECRET_PREFIX} followed by 24 to 64 bytes in base64 "
            f"(echo {WEBHOOK_SECRET_PREFIX}$(openssl rand -base64 32))."
        )


def read_secret_file(variable: str, path: str) -> str:
    """The secret in the file at `path` (see `_secret_file`), redacted from then on."""
    value = _secret_file(variable, path)
    redaction.add_secret(value)
    return value


def _secret_file(variable: str, path: str) -> str:
    """The secret in the file at `path`; an error names the variable and the path, never
    what the file holds."""
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise ConfigurationError(f"Cannot read {variable} {path!r}: {reason}.") from None
    if len(content) > MAX_SECRET_FILE_BYTES:
        raise ConfigurationError(
            f"{variable} {path!r} is larger than {MAX_SECRET_FILE_BYTES // 1024} KB: not a secret."
        )
    try:
        value = content.decode().strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"{variable} {path!r} is not UTF-8 text.") from None
    if not value:
        raise ConfigurationError(f"{variable} {path!r} is empty.")
    return value


_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN_HOST = re.compile(r"^([a-z0-9.-]+|[0-9a-f:.]+)$")
"""A host as browsers send it in an origin: a name in ASCII (punycode), IPv4, or IPv6."""


def web_origin(name: str, text: str) -> str:
    """`text` as a browser serializes an origin (`https://app.example.org`, `http://[::1]:8080`),
    or one line saying what is wrong. An origin is exact: no `*` (every site would be let in),
    no path; `http` only for a loopback host, since a page served in clear can be altered on its
    way to the browser that then calls us with the caller's token."""
    if "*" in text:
        raise ConfigurationError(
            f"{name} lists exact origins (https://app.example.org); '*' is not accepted; "
            f"got {text!r}."
        )
    try:
        parts = urlsplit(text)
        port = parts.port
        hostname = parts.hostname or ""
        if ":" in hostname:  # IPv6, in the compressed form browsers write
            hostname = ipaddress.IPv6Address(hostname).compressed
    except ValueError:
        parts, port, hostname = urlsplit(""), None, ""
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not _ORIGIN_HOST.match(hostname)
        or parts.username is not None
    ):
        raise ConfigurationError(
            f"{name} must list origins such as https://app.example.org (a scheme, a host and "
            f"a port if not the default); got {text!r}."
        )
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ConfigurationError(
            f"{name} must list origins without a path or a trailing slash; got {text!r}."
        )
    if parts.scheme == "http" and not _loopback(hostname):
        raise ConfigurationError(
            f"{name} must list https origins (http is accepted for a loopback host only); "
            f"got {text!r}."
        )
    host = f"[{hostname}]" if ":" in hostname else hostname
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{shown_port}"


def secure_url(origin: str, value: str) -> str:
    """`value` if it is an https URL, or an http one to a loopback host; else one line naming
    `origin` (a variable, or a place in the configuration file)."""
    try:
        scheme, hostname = urlsplit(value).scheme, urlsplit(value).hostname
    except ValueError:  # an unclosed [IPv6 literal, a bad port
        scheme, hostname = "", None
    if scheme not in ("http", "https") or not hostname:
        raise ConfigurationError(f"{origin} must be an https URL; got {value!r}.")
    if scheme == "http" and not _loopback(hostname):
        raise ConfigurationError(
            f"{origin} must be an https URL (http is accepted for a loopback host only); "
            f"got {value!r}."
        )
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsReader:
    """Reads environment variables as the README documents them: one place for every rule.

    An unset or blank variable takes its default from `defaults` (a mapping of names to
    defaults, or the `Setting`s declared); a bad value raises `ConfigurationError` with
    one line naming the variable. The core and every plugin read their settings through
    it, so all settings fail alike. Secrets read with `secret` may come from a file
    (`<NAME>_FILE`) and are redacted wherever they would be written (logs, error bodies).
    """

    def __init__(
        self, environ: Mapping[str, str], defaults: Mapping[str, str] | Iterable[Setting]
    ) -> None:
        self._environ = environ
        self._defaults = (
            dict(defaults) if isinstance(defaults, Mapping) else catalog.defaults(defaults)
        )

    def text(self, name: str, value: str | None = None, default: str | None = None) -> str:
        """`value` (else the variable), or `default` (else the documented one) when empty."""
        if value is None:
            value = self._environ.get(name)
        if value is None or value.strip() == "":
            return default if default is not None else self._defaults.get(name, "")
        return value.strip()

    def secret(self, name: str) -> str:
        """A secret (an API key): read like `text`, or from the file `<name>_FILE` names (as
        container platforms mount secrets; surrounding blanks and the final newline dropped),
        never both. Its value is never written to a log or an answer."""
        file_variable = name + FILE_SUFFIX
        path = self.text(file_variable, default="")
        if not path:
            value = self.text(name)
        elif self.text(name, default=""):
            raise ConfigurationError(f"Set {name} or {file_variable}, not both.")
        else:
            value = _secret_file(file_variable, path)
        if value != self._defaults.get(name):  # a default is no secret (the store's)
            redaction.add_secret(value)
        return value

    def boolean(self, name: str) -> bool:
        value = self.text(name)
        if value not in ("true", "false"):
            raise ConfigurationError(f"{name} must be true or false; got {value!r}.")
        return value == "true"

    def integer(self, name: str, *, minimum: int, maximum: int | None = None) -> int:
        return whole_number(name, self.text(name), minimum=minimum, maximum=maximum)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.text(name)
        if value not in choices:
            raise ConfigurationError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
        return value

    def url(self, name: str, *, strip_slash: bool = True) -> str:
        """An https URL (plain http only to a loopback host, for tests and local runs), or ""
        when unset; without its final slash unless `strip_slash` is False (a receiver's URL
        is used as given). A provider's credentials never travel in clear over a network."""
        value = self.text(name)
        if not value:
            return ""
        checked = secure_url(name, value)
        return checked.rstrip("/") if strip_slash else checked

    def names(self, name: str) -> frozenset[str]:
        """A comma-separated list of names (groups), blanks dropped."""
        return frozenset(item.strip() for item in self.text(name).split(",") if item.strip())

    def origins(self, name: str) -> frozenset[str]:
        """A comma-separated list of web origins, each as browsers send it in `Origin`
        (lower case, without the scheme's default port), blanks dropped."""
        return frozenset(
            web_origin(name, item.strip()) for item in self.text(name).split(",") if item.strip()
        )

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        """A comma-separated list of CIDRs (an address alone is a /32 or /128)."""
        found = []
        for item in (part.strip() for part in self.text(name).split(",")):
            if not item:
                continue
            try:
                found.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"{name} must be comma-separated CIDRs like 10.0.0.0/8; got {item!r}."
                ) from None
        return tuple(found)

    def header_name(self, name: str) -> str:
        text = self.text(name)
        if not _HEADER_NAME.match(text):
            raise ConfigurationError(f"{name} must be an HTTP header name; got {text!r}.")
        return text.lower()

    def collection(self, name: str, value: str | None = None) -> str:
        text = self.text(name, value)
        if not _COLLECTION_NAME.match(text):
            raise ConfigurationError(
                f"{name} must be 1 to 63 letters, digits, '_' or '-'; got {text!r}."
            )
        return text
