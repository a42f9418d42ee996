"""`JanusSettings`: the janus provider's own variables, declared once and checked whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from teleconsult.plugin import (
    Boolean,
    CallPolicy,
    ConfigurationError,
    DeclaredSettings,
    TokenWindow,
    WholeNumber,
    setting,
)

MIN_SECRET_CHARS = 32
"""The token secret signs every token Janus accepts, and derives the links' key."""
MIN_ADMIN_KEY_CHARS = 16
HARD_MAX_PARTICIPANTS = 100


@dataclass(frozen=True)
class Options:
    """The provider's settings, checked whole, read once by the factory."""

    url: str
    public_url: str
    admin_key: str = field(repr=False)
    token_secret: str = field(repr=False)
    events_user: str
    events_password: str = field(repr=False)
    max_participants: int
    window: TokenWindow
    policy: CallPolicy
    page_url: str
    """Where this service's call page is served (the links' prefix)."""


class JanusSettings(DeclaredSettings):
    """The provider's variables, with their defaults and meanings (rows of docs/settings.md)."""

    url: str = setting(
        "JANUS_URL",
        "",
        "`janus` provider, required: Janus's HTTP API as the service reaches it, e.g. "
        "`https://janus.internal:8089/janus` (`http://` for a loopback host, or with "
        "`JANUS_ALLOW_PLAIN_HTTP`)",
    )
    public_url: str = setting(
        "JANUS_PUBLIC_URL",
        "",
        "`janus` provider, required: where browsers reach Janus's WebSocket API, `wss://...` "
        "(`ws://` only for a loopback host or with `JANUS_ALLOW_PLAIN_HTTP`); the call page may "
        "connect to its origin",
    )
    allow_plain_http: Boolean = setting(
        "JANUS_ALLOW_PLAIN_HTTP",
        False,
        "`janus` provider: accept `http://` and `ws://` Janus URLs off loopback (Janus on a "
        "private network only: the admin key and the tokens then cross it in clear)",
    )
    admin_key: str = setting(
        "JANUS_ADMIN_KEY",
        "",
        "`janus` provider, required: the videoroom plugin's `admin_key` (at least 16 characters; "
        "never logged)",
        secret=True,
    )
    token_secret: str = setting(
        "JANUS_TOKEN_SECRET",
        "",
        "`janus` provider, required: Janus's `token_auth_secret` (at least 32 characters; never "
        "logged): signs every token Janus accepts and the links' credentials",
        secret=True,
    )
    events_user: str = setting(
        "JANUS_EVENTS_USER",
        "janus",
        "`janus` provider: the user Janus's HTTP event handler sends (`backend_user`)",
    )
    events_password: str = setting(
        "JANUS_EVENTS_PASSWORD",
        "",
        "`janus` provider: the password Janus's HTTP event handler sends (`backend_pwd`); unset, "
        "`POST /providers/janus/events` refuses everything",
        secret=True,
    )
    public_page_url: str = setting(
        "JANUS_PAGE_URL",
        "",
        "`janus` provider: where its links point, as participants' browsers reach this service, "
        "`https://...`; unset = `http://<HTTP_HOST>:<HTTP_PORT>` (`http://` off loopback only "
        "with `JANUS_ALLOW_PLAIN_HTTP`)",
    )
    max_participants: WholeNumber = setting(
        "JANUS_MAX_PARTICIPANTS",
        12,
        "`janus` provider: the most participants a teleconsultation may have (each one publishes"
        " once and receives every other's stream through Janus)",
        minimum=2,
        maximum=HARD_MAX_PARTICIPANTS,
    )
    token_grace_ms: WholeNumber = TokenWindow.grace_setting("JANUS", "janus")
    max_lifetime_ms: WholeNumber = TokenWindow.lifetime_setting("JANUS", "janus")
    timeout_ms: WholeNumber = setting(
        "JANUS_TIMEOUT_MS",
        10_000,
        "`janus` provider: timeout of each call to Janus's HTTP API",
        minimum=1,
        maximum=600_000,
    )
    max_attempts: WholeNumber = setting(
        "JANUS_MAX_ATTEMPTS",
        3,
        "`janus` provider: attempts per call (every call it makes is safe to repeat) after a "
        "timeout, a 5xx or no connection",
        minimum=1,
        maximum=10,
    )

    def check(self) -> None:
        self.options("http://127.0.0.1")

    def options(self, server_url: str) -> Options:
        """The options, every required variable and URL checked, with one actionable line."""
        for name, value, what in [
            ("JANUS_URL", self.url, "Janus's HTTP API (for example https://janus:8089/janus)"),
            ("JANUS_PUBLIC_URL", self.public_url, "where browsers reach Janus (wss://...)"),
            ("JANUS_ADMIN_KEY", self.admin_key, "the videoroom's admin_key"),
            ("JANUS_TOKEN_SECRET", self.token_secret, "Janus's token_auth_secret"),
        ]:
            if not value:
                raise ConfigurationError(f"VIDEO_PROVIDER=janus needs {name}, {what}.")
        for name, value, minimum in [
            ("JANUS_ADMIN_KEY", self.admin_key, MIN_ADMIN_KEY_CHARS),
            ("JANUS_TOKEN_SECRET", self.token_secret, MIN_SECRET_CHARS),
        ]:
            if len(value) < minimum:
                raise ConfigurationError(
                    f"{name} must be at least {minimum} characters (for example the output of "
                    "`openssl rand -base64 32`)."
                )
        self._check_url("JANUS_URL", self.url, ("https", "http"))
        self._check_url("JANUS_PUBLIC_URL", self.public_url, ("wss", "ws"))
        if self.public_page_url:
            self._check_url("JANUS_PAGE_URL", self.public_page_url, ("https", "http"))
        return Options(
            url=self.url.rstrip("/"),
            public_url=self.public_url.rstrip("/"),
            admin_key=self.admin_key,
            token_secret=self.token_secret,
            events_user=self.events_user,
            events_password=self.events_password,
            max_participants=self.max_participants,
            window=TokenWindow.of(self.token_grace_ms, self.max_lifetime_ms),
            policy=CallPolicy(
                timeout_seconds=self.timeout_ms / 1000, max_attempts=self.max_attempts
            ),
            page_url=(self.public_page_url or server_url).rstrip("/"),
        )

    def _check_url(self, name: str, value: str, schemes: tuple[str, ...]) -> None:
        """A secure scheme (the first of each pair), or a plain one to loopback or when allowed."""
        try:
            parts = urlsplit(value)
            scheme, host = parts.scheme, parts.hostname
        except ValueError:
            scheme, host = "", None
        secure = schemes[0::2]
        if scheme not in schemes or not host:
            raise ConfigurationError(
                f"{name} must be a {' or '.join(s + '://' for s in secure)} URL; got {value!r}."
            )
        plain_ok = self.allow_plain_http or host in ("localhost", "127.0.0.1", "::1")
        if scheme not in secure and not plain_ok:
            raise ConfigurationError(
                f"{name} must use {' or '.join(s + '://' for s in secure)} (plain {scheme}:// is "
                f"accepted for a loopback host, or with JANUS_ALLOW_PLAIN_HTTP=true); got "
                f"{value!r}."
            )
