"""Environment variables, parsed once at start into a frozen `Settings`.

A bad value raises `ConfigurationError` with one line that names the variable;
the CLI prints that line and exits. The README lists every variable with its
default: keep the two in step (a test compares them).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from teleconsult.core.domain import RECORDING_TYPES, RoomPolicy
from teleconsult.errors import ConfigurationError
from teleconsult.observability import redaction

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "silent")
SQLITE_SYNCHRONOUS_MODES = ("full", "normal", "extra")
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_IMMUTABLE_PERIOD_MS = 30 * 24 * 3600 * 1000
"""Thirty days: a window longer than that is a typo (and would overflow date arithmetic)."""

DEFAULTS: dict[str, str] = {
    "HTTP_HOST": "127.0.0.1",
    "HTTP_PORT": "3000",
    "LOG_LEVEL": "info",
    "STORE_URL": "sqlite:///teleconsult.db",
    "MONGODB_DATABASE": "",
    "MONGODB_TIMEOUT_MS": "5000",
    "VIDEO_PROVIDER": "webrtc",
    "IDENTITY_PROVIDER": "static",
    "TELECONSULTATION_SERVICE_CONFIG_PATH": "",
    "TELECONSULTATIONS_CRUD_NAME": "teleconsultations",
    "USER_ID_MAP_CRUD_NAME": "users",
    "UNLIMITED_TELECONSULTATION": "true",
    "LIVE_TELECONSULTATION": "true",
    "IMMUTABLE_PERIOD_MS": "0",
    "DEFAULT_RECORDING_TYPE": "none",
    "TELECONSULTATION_DELETE_UPLOADS": "false",
    "USERID_HEADER_KEY": "miauserid",
    "SHUTDOWN_GRACE_MS": "25000",
    "IDEMPOTENCY_KEY_TTL_MS": "86400000",
    "RECONCILE_INTERVAL_MS": "10000",
    "JWT_JWKS_URL": "",
    "JWT_AUDIENCE": "",
    "JWT_ISSUER": "",
    "JWT_USER_ID_CLAIM": "sub",
    "JWT_GROUPS_CLAIM": "groups",
    "JWT_JWKS_TTL_MS": "600000",
    "MANAGER_GROUPS": "",
    "ADMIN_GROUPS": "",
    "ALLOW_ANONYMOUS_WRITES": "true",
    "GROUPS_HEADER_KEY": "miausergroups",
    "IDEMPOTENCY_MAX_KEYS_PER_CALLER": "10000",
    "HTTP_READ_TIMEOUT_MS": "30000",
    "SQLITE_SYNCHRONOUS": "full",
}
"""Every core variable and its default, as the README documents them."""


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
    sqlite_synchronous: str

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
        store_url = reader.text("STORE_URL")
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
                default="bandyer" if environ.get("BANDYER_API_SECRET_KEY") else None,
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
            jwt_jwks_ttl_ms=reader.integer("JWT_JWKS_TTL_MS", minimum=1000, maximum=86_400_000),
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
            sqlite_synchronous=reader.choice("SQLITE_SYNCHRONOUS", SQLITE_SYNCHRONOUS_MODES),
        )


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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsReader:
    """Reads environment variables as the README documents them: one place for every rule.

    An unset or blank variable takes its default from `defaults`; a bad value raises
    `ConfigurationError` with one line naming the variable. The core and every plugin
    read their settings through it, so all settings fail alike. Secrets read with
    `secret` are redacted wherever they would be written (logs, error bodies).
    """

    def __init__(self, environ: Mapping[str, str], defaults: Mapping[str, str]) -> None:
        self._environ = environ
        self._defaults = defaults

    def text(self, name: str, value: str | None = None, default: str | None = None) -> str:
        """`value` (else the variable), or `default` (else the documented one) when empty."""
        if value is None:
            value = self._environ.get(name)
        if value is None or value.strip() == "":
            return default if default is not None else self._defaults.get(name, "")
        return value.strip()

    def secret(self, name: str) -> str:
        """A secret (an API key): read like `text`, and never written to a log or an answer."""
        value = self.text(name)
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

    def url(self, name: str) -> str:
        """An https URL (plain http only to a loopback host, for tests and local runs), or ""
        when unset. A provider's credentials never travel in clear over a network."""
        value = self.text(name)
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"{name} must be an https URL; got {value!r}.")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ConfigurationError(
                f"{name} must be an https URL (http is accepted for a loopback host only); "
                f"got {value!r}."
            )
        return value.rstrip("/")

    def names(self, name: str) -> frozenset[str]:
        """A comma-separated list of names (groups), blanks dropped."""
        return frozenset(item.strip() for item in self.text(name).split(",") if item.strip())

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
