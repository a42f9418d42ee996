"""Join links: a per-participant credential, signed, bounded by the consultation's window.

A credential is `<payload>.<signature>`, both base64url without padding: the
payload is compact JSON naming the teleconsultation, the room, the participant's
provider user id, the window (epoch seconds), the page's language and, once the
participant's link was revoked, its generation; the
signature is HMAC-SHA256 over the payload with the link secret. It is checked
before anything is read, so a forged link costs one HMAC. Links carry no names.

The secret is WEBRTC_LINK_SECRET, or else one generated once and kept in the
provider's storage (created with compare-and-set, so every replica signs with
the same one). Changing it invalidates every link handed out: the next poll
of `GET /teleconsultation/{roomId}` hands out a new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeGuard

from teleconsult.errors import ConfigurationError, VersionConflict
from teleconsult.providers.storage import ProviderStorage

if TYPE_CHECKING:
    from datetime import timedelta

    from teleconsult.callpage.catalogs import Catalogs
    from teleconsult.providers.protocols import JoinRequest

SECRET_KEY = "link-secret"  # noqa: S105 - a storage key, not a secret
"""The storage key of the generated secret."""
SECRET_BYTES = 32
MIN_SECRET_CHARS = 32
MAX_CREDENTIAL_CHARS = 1024
"""A credential is about 250 characters; anything much longer is refused unread."""
_CONTEXT = b"teleconsult-webrtc-link-v1:"
"""Signed with the payload, so this secret's signatures mean nothing elsewhere."""


@dataclass(frozen=True)
class Credential:
    teleconsultation_id: str
    room_id: str
    user_id: str
    opens_at: int
    """Epoch seconds: the link works from then on (the lock time)..."""
    expires_at: int
    """...until then (the end plus the grace, or the start plus the maximum lifetime)."""
    language: str | None
    generation: int = 0
    """The participant's link generation when it was made: a revocation raises theirs, and
    a link of an earlier one opens nothing. Signed only from the first revocation on (`g`), so
    links made before look as they always did."""


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, credential: Credential) -> str:
        payload = _encode(
            json.dumps(
                {
                    "t": credential.teleconsultation_id,
                    "r": credential.room_id,
                    "u": credential.user_id,
                    "nb": credential.opens_at,
                    "exp": credential.expires_at,
                    "l": credential.language,
                    **({"g": credential.generation} if credential.generation else {}),
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{self._signature(payload)}"

    def verify(self, text: str) -> Credential | None:
        """The credential `text` carries, or None when it is not one this secret signed."""
        if len(text) > MAX_CREDENTIAL_CHARS or text.count(".") != 1:
            return None
        payload, signature = text.split(".")
        if not hmac.compare_digest(signature.encode(), self._signature(payload).encode()):
            return None
        try:
            fields = json.loads(_decode(payload))
        except (ValueError, binascii.Error):
            return None
        return _credential(fields)

    def _signature(self, payload: str) -> str:
        return _encode(hmac.new(self._secret, _CONTEXT + payload.encode(), hashlib.sha256).digest())


def configured_secret(value: str) -> bytes | None:
    """WEBRTC_LINK_SECRET as signing key bytes; None when unset (the stored one is used)."""
    if not value:
        return None
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigurationError(
            f"WEBRTC_LINK_SECRET must be at least {MIN_SECRET_CHARS} characters "
            "(for example the output of `openssl rand -base64 32`)."
        )
    return value.encode()


async def stored_secret(storage: ProviderStorage) -> bytes:
    """The secret every replica shares: read it, or create it if no replica has yet."""
    for _ in range(3):
        found = await storage.get(SECRET_KEY)
        if found is not None:
            return _decode(str(found.document["secret"]))
        secret = secrets.token_bytes(SECRET_BYTES)
        try:
            await storage.put(SECRET_KEY, {"secret": _encode(secret)}, None)
        except VersionConflict:
            continue  # another replica created it first: read theirs
        return secret
    raise VersionConflict(SECRET_KEY)


def _credential(fields: object) -> Credential | None:
    if not isinstance(fields, dict):
        return None
    tid, room, user, opens, expires, language = (
        fields.get(name) for name in ("t", "r", "u", "nb", "exp", "l")
    )
    if not (_text(tid) and _text(room) and _text(user) and _time(opens) and _time(expires)):
        return None
    if language is not None and not isinstance(language, str):
        return None
    generation = fields.get("g", 0)
    if not _time(generation) or generation < 0:
        return None
    return Credential(tid, room, user, opens, expires, language, generation)


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def _time(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def join_credential(
    join: JoinRequest, grace: timedelta, max_lifetime: timedelta, catalogs: Catalogs
) -> Credential:
    """The credential of a participant's page link: their room, bounded by the consultation's
    window (`JoinRequest.window`), in their language, of their link generation."""
    opens, expires = join.window(grace, max_lifetime)
    return Credential(
        teleconsultation_id=join.teleconsultation_id,
        room_id=join.provider_room_id,
        user_id=join.participant.provider_user_id,
        opens_at=math.floor(opens.timestamp()),
        expires_at=math.ceil(expires.timestamp()),
        language=catalogs.match(join.language),
        generation=join.link_generation,
    )
