"""Video provider `jitsi`: Jitsi Meet, self-hosted with token authentication, or 8x8 JaaS.

Jitsi has no room API: a room exists once its first participant joins, and anyone
holding a valid token for it may. So the provider only chooses an unguessable room
name per room and, each time a link is handed out (every GET once the call is
locked), signs the participant a token for that room alone, valid from the lock time
to the end plus JITSI_TOKEN_GRACE_MS (`tokens.py`). Nothing is stored but the room
name, and nothing is called. Deleting a room does nothing: a cancelled call's tokens
stay valid until they expire, which is why they expire soon after the consultation.
"""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from teleconsult.plugin import (
    ConfigurationError,
    CreatedRoom,
    DeclaredSettings,
    JoinRequest,
    Level,
    ProviderContext,
    ProviderError,
    ProviderLimits,
    RoomSpec,
    TokenWindow,
    VideoProviderPlugin,
    WholeNumber,
    hookimpl,
    setting,
    stable_user_id,
)
from teleconsult_jitsi import tokens

NAME = "jitsi"
ROOM_PREFIX = "teleconsult-"
LINK_MARKER = "?jwt="
"""Found in every link this provider makes: the token follows it."""
MIN_SECRET_CHARS = 32
"""An HS256 secret shorter than its hash (RFC 7518) could be guessed from any token a
patient was handed."""
MIN_RSA_BITS = 2048
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class JitsiVideo:
    name = NAME
    limits = ProviderLimits()
    """Jitsi sets no limits of its own that we know of: the service's defaults (2 to 25)."""
    revocation_refusal = (
        "a Jitsi link is a JWT that Prosody accepts until its `exp`, with no list of revoked "
        "tokens and no API to disconnect one participant; cancel the teleconsultation to end "
        "every link"
    )
    """Why `DELETE .../link` and `PUT .../block` answer 501 (no `LinkRevocation`)."""

    def __init__(self, domain: str, issuer: tokens.Issuer, window: TokenWindow) -> None:
        self.domain = domain
        self.issuer = issuer
        self.window = window
        tenant = issuer.tenant
        # JaaS and multi-tenant deployments serve a tenant's rooms under /<tenant>/<room>.
        self.rooms_url = f"https://{domain}/" + (
            "" if tenant in (tokens.ANY_TENANT, domain.split(":")[0]) else f"{tenant}/"
        )

    async def ensure_user(self, external_id: str, level: Level) -> str:
        # Jitsi has no users: the id only goes into the participant's token.
        return stable_user_id(external_id)

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        """An unguessable name (128 random bits, lower case as Jitsi compares room names):
        a room's name is all a Jitsi link says about it."""
        refusal = self.limits.refusal(spec)
        if refusal is not None:
            raise ProviderError(NAME, "create a room", "bad_answer", refusal)
        return CreatedRoom(provider_room_id=ROOM_PREFIX + secrets.token_hex(16))

    async def delete_room(self, provider_room_id: str) -> None:
        """Nothing to delete: the room's tokens expire at the end of their window."""
        return None

    def join_link(self, join: JoinRequest) -> str:
        """`https://<domain>/[<tenant>/]<room>?jwt=<token>`, opening in the participant's
        language (`#config.defaultLanguage`, whose value jitsi-meet reads as JSON)."""
        not_before, expires = self.window.claims(join)
        token = self.issuer.token(
            join.provider_room_id,
            user_id=join.participant.provider_user_id,
            name=join.display_name,
            moderator=join.participant.is_admin,
            tools=join.participant.tools,
            not_before=not_before,
            expires=expires,
        )
        link = f"{self.rooms_url}{join.provider_room_id}{LINK_MARKER}{token}"
        if join.language:
            link += "#config.defaultLanguage=" + quote(json.dumps(join.language), safe="")
        return link

    async def check(self) -> None:
        return None  # nothing to reach: Jitsi is only met by the participants' browsers

    async def close(self) -> None:
        return None


class JitsiSettings(DeclaredSettings):
    """The provider's variables, with their defaults and meanings (rows of docs/settings.md)."""

    domain: str = setting(
        "JITSI_DOMAIN",
        "",
        "`jitsi` provider, required: the host of the Jitsi Meet deployment (`meet.example.org`; "
        "`8x8.vc` for 8x8 JaaS); links are `https://<JITSI_DOMAIN>/<room>?jwt=<token>`",
    )
    app_id: str = setting(
        "JITSI_APP_ID",
        "",
        "`jitsi` provider, required: the tokens' `iss`, prosody's `app_id` (`chat` for 8x8 JaaS)",
    )
    app_secret: str = setting(
        "JITSI_APP_SECRET",
        "",
        "`jitsi` provider: the HS256 secret prosody shares (`app_secret`), at least 32 characters;"
        " this or `JITSI_PRIVATE_KEY` (never logged)",
        secret=True,
    )
    private_key: str = setting(
        "JITSI_PRIVATE_KEY",
        "",
        "`jitsi` provider: an RSA private key in PEM form (line breaks may be written `\\n`) to "
        "sign RS256 tokens, as 8x8 JaaS requires; with `JITSI_KEY_ID` (never logged)",
        secret=True,
    )
    key_id: str = setting(
        "JITSI_KEY_ID",
        "",
        "`jitsi` provider with `JITSI_PRIVATE_KEY`: the key's id, the tokens' `kid` (JaaS: "
        "`<AppID>/<key id>`)",
    )
    audience: str = setting(
        "JITSI_AUDIENCE",
        "jitsi",
        "`jitsi` provider: the tokens' `aud` (one of prosody's `asap_accepted_audiences`)",
    )
    tenant: str = setting(
        "JITSI_TENANT",
        tokens.ANY_TENANT,
        "`jitsi` provider: the tokens' `sub`: `*` for any, or a tenant (the AppID for 8x8 JaaS), "
        "whose rooms links then open under `/<tenant>/<room>`",
    )
    token_grace_ms: WholeNumber = TokenWindow.grace_setting("JITSI", NAME)
    max_lifetime_ms: WholeNumber = TokenWindow.lifetime_setting("JITSI", NAME)

    def check(self) -> None:
        self.provider_values()

    def provider_values(self) -> tuple[str, tokens.Issuer, TokenWindow]:
        """The domain, the token issuer and window, checked: a bad one stops the start."""
        domain = self.domain.lower()
        if not domain:
            raise ConfigurationError(
                "VIDEO_PROVIDER=jitsi needs JITSI_DOMAIN, the host of the Jitsi Meet deployment "
                "(for example meet.example.org, or 8x8.vc for 8x8 JaaS)."
            )
        if not _HOST.match(domain):
            raise ConfigurationError(
                f"JITSI_DOMAIN must be a host name (links are https://<JITSI_DOMAIN>/<room>); "
                f"got {domain!r}."
            )
        if not self.app_id:
            raise ConfigurationError(
                "VIDEO_PROVIDER=jitsi needs JITSI_APP_ID, the issuer of its tokens "
                "(prosody's app_id; chat for 8x8 JaaS)."
            )
        if self.tenant != tokens.ANY_TENANT and not _TENANT.match(self.tenant):
            raise ConfigurationError(
                f"JITSI_TENANT must be * or a lower-case tenant name; got {self.tenant!r}."
            )
        issuer = tokens.Issuer(
            app_id=self.app_id,
            audience=self.audience,
            tenant=self.tenant,
            key=_signing_key(self.app_secret, self.private_key.replace("\\n", "\n")),
            key_id=self.key_id or None,
        )
        _check_key_id(issuer)
        return domain, issuer, TokenWindow.of(self.token_grace_ms, self.max_lifetime_ms)


def _signing_key(secret: str, pem: str) -> str | RSAPrivateKey:
    """The HS256 secret or the RS256 key (a PEM whose line breaks may be written `\\n`)."""
    if secret and pem:
        raise ConfigurationError(
            "Set JITSI_APP_SECRET (HS256) or JITSI_PRIVATE_KEY (RS256), not both."
        )
    if secret:
        if len(secret) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"JITSI_APP_SECRET must be at least {MIN_SECRET_CHARS} characters: a shorter "
                "HS256 secret could be guessed from any token handed out."
            )
        return secret
    if not pem:
        raise ConfigurationError(
            "VIDEO_PROVIDER=jitsi needs JITSI_APP_SECRET (HS256), or JITSI_PRIVATE_KEY and "
            "JITSI_KEY_ID (RS256, as 8x8 JaaS requires)."
        )
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise ConfigurationError(
            f"JITSI_PRIVATE_KEY must be an unencrypted RSA private key of at least "
            f"{MIN_RSA_BITS} bits, in PEM form."
        )
    return key


def _check_key_id(issuer: tokens.Issuer) -> None:
    """A kid goes with an RS256 key; JaaS ties the kid, the issuer and the audience to the
    AppID (jitsi-meet refuses its tokens otherwise)."""
    if issuer.algorithm == tokens.RS256 and not issuer.key_id:
        raise ConfigurationError("JITSI_PRIVATE_KEY needs JITSI_KEY_ID, the id of its key (kid).")
    if issuer.algorithm == tokens.HS256 and issuer.key_id:
        raise ConfigurationError("JITSI_KEY_ID goes with JITSI_PRIVATE_KEY (RS256 tokens).")
    if not issuer.tenant.startswith(tokens.JAAS_TENANT_PREFIX):
        return
    expected = {
        "JITSI_KEY_ID": (issuer.key_id or "").split("/")[0] == issuer.tenant,
        "JITSI_APP_ID": issuer.app_id == tokens.JAAS_ISSUER,
        "JITSI_AUDIENCE": issuer.audience == tokens.JAAS_AUDIENCE,
    }
    wrong = [name for name, right in expected.items() if not right]
    if wrong:
        raise ConfigurationError(
            f"With 8x8 JaaS (JITSI_TENANT={issuer.tenant}), JITSI_KEY_ID must be "
            f"<JITSI_TENANT>/<key>, JITSI_APP_ID {tokens.JAAS_ISSUER} and JITSI_AUDIENCE "
            f"{tokens.JAAS_AUDIENCE}; check {', '.join(wrong)}."
        )


def create(context: ProviderContext[JitsiSettings]) -> JitsiVideo:
    return JitsiVideo(*context.settings.provider_values())


@hookimpl
def register_video_providers() -> list[VideoProviderPlugin[JitsiSettings]]:
    return [
        VideoProviderPlugin(
            name=NAME,
            create=create,
            description="Jitsi Meet (self-hosted token auth, or 8x8 JaaS): a token per link.",
            link_markers=(LINK_MARKER,),
            settings=JitsiSettings,
        )
    ]
