"""Jitsi join tokens, claim by claim, as prosody's token authentication reads them.

The claims follow lib-jitsi-meet's `doc/tokens.md` (and 8x8's "The Jitsi JSON Web
Token" for JaaS); each name stands here once:

- the header: `alg` HS256 with the app secret, or RS256 with a `kid` (8x8 JaaS, or
  prosody's `asap_key_server`); `typ` is `JWT` (luajwtjitsi refuses any other);
- `iss`, the app id prosody accepts (`chat` for JaaS); `aud`, an accepted audience;
  `sub`, the tenant (`*` for any, the AppID for JaaS);
- `room`: this room only, never `*`, in lower case (prosody compares it with the
  lower-cased room of the conference);
- `nbf` and `exp`: prosody checks both strictly, with no leeway;
- `context.user`: `id` and `name` (strings only: prosody fails on anything else) and
  `moderator` as the string `"true"` or `"false"`, which JaaS and the moderation plugins
  read; a top-level `moderator` flag too, for the plugins that read that one;
- `context.features`: what the participant's tools allow, in jitsi-meet's feature names
  (JaaS requires the object).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

HS256 = "HS256"
RS256 = "RS256"
TYPE = "JWT"

ISSUER = "iss"
AUDIENCE = "aud"
SUBJECT = "sub"
ROOM = "room"
NOT_BEFORE = "nbf"
EXPIRES = "exp"
MODERATOR = "moderator"
CONTEXT = "context"
USER = "user"
USER_ID = "id"
USER_NAME = "name"
FEATURES = "features"
ANY_TENANT = "*"

JAAS_TENANT_PREFIX = "vpaas-magic-cookie-"
JAAS_ISSUER = "chat"
JAAS_AUDIENCE = "jitsi"

FEATURES_BY_TOOL = {
    "chat": ("send-groupchat", "send-private-message"),
    "screen_sharing": ("screen-sharing",),
    "file_upload": ("file-upload",),
}
"""Our tools that have a jitsi-meet feature flag; the other tools have no Jitsi equivalent."""


def flag(value: bool) -> str:
    """Jitsi's flags are the strings "true" and "false" inside `context`."""
    return "true" if value else "false"


def features(tools: Iterable[str]) -> dict[str, str]:
    enabled = set(tools)
    return {
        feature: flag(tool in enabled)
        for tool, names in FEATURES_BY_TOOL.items()
        for feature in names
    }


@dataclass(frozen=True)
class Issuer:
    """Who signs the tokens, and for which deployment."""

    app_id: str
    audience: str
    tenant: str
    key: str | RSAPrivateKey = field(repr=False)
    """The HS256 secret, or the RS256 private key."""
    key_id: str | None = None

    @property
    def algorithm(self) -> str:
        return RS256 if isinstance(self.key, RSAPrivateKey) else HS256

    def token(
        self,
        room: str,
        *,
        user_id: str,
        name: str,
        moderator: bool,
        tools: Iterable[str],
        not_before: int,
        expires: int,
    ) -> str:
        """One participant's token for one room, valid from `not_before` to `expires`."""
        claims: dict[str, Any] = {
            ISSUER: self.app_id,
            AUDIENCE: self.audience,
            SUBJECT: self.tenant,
            ROOM: room,
            NOT_BEFORE: not_before,
            EXPIRES: expires,
            MODERATOR: moderator,
            CONTEXT: {
                USER: {USER_ID: user_id, USER_NAME: name, MODERATOR: flag(moderator)},
                FEATURES: features(tools),
            },
        }
        headers = {"typ": TYPE, **({"kid": self.key_id} if self.key_id else {})}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)
