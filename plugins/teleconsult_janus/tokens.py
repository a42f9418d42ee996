"""Janus's signed tokens (`token_auth_secret`): `<expiry>,janus,<plugin>[,...]:<signature>`,
the signature HMAC-SHA1 of the part before the colon with JANUS_TOKEN_SECRET, in base64.

Janus checks the signature, the expiry and that the videoroom is among the listed plugins;
any other entry of the list is signed but otherwise ignored, so a participant's token ends
with `teleconsult.<room>.<user>` (then `generation.<n>` for a link handed out after a
revocation): each participant's token differs from every other's, and from their revoked
links' tokens, the videoroom's `allowed` list can hold it alone, and it is computed again
from the same inputs (nothing is stored). Tokens are credentials: never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from .client import VIDEOROOM

REALM = "janus"
SERVICE_SECONDS = 300
"""The service's own token, signed at every call, is valid that long."""
LINK_KEY_CONTEXT = b"teleconsult-janus-link-key-v1"
GENERATION = "generation."
"""The entry of a token made for a link of a later generation than the first."""


def signed_token(secret: str, expires_at: int, *entries: str) -> str:
    """A token Janus accepts until `expires_at` (epoch seconds) for the videoroom."""
    data = ",".join([str(expires_at), REALM, VIDEOROOM, *entries])
    signature = hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()
    return f"{data}:{base64.b64encode(signature).decode('ascii')}"


def participant_token(
    secret: str, expires_at: int, room: str, user_id: str, generation: int = 0
) -> str:
    """The token one participant joins their room with; `allowed` holds it. A link of a later
    generation (issue 30: the earlier ones revoked) gets another token, so that the revoked
    one can leave `allowed` while the new one is in it."""
    later = [f"{GENERATION}{generation}"] if generation else []
    return signed_token(secret, expires_at, participant_mark(room, user_id), *later)


def participant_mark(room: str, user_id: str) -> str:
    """The entry that names a participant in their tokens (events.py reads it back)."""
    return f"teleconsult.{room}.{_entry(user_id)}"


def generation_of(token: str) -> int:
    """The link generation a participant's token was made for (0 when it names none)."""
    for entry in token.partition(":")[0].split(","):
        number = entry.removeprefix(GENERATION)
        if entry.startswith(GENERATION) and number.isascii() and number.isdigit():
            return int(number)
    return 0


def link_key(secret: str) -> bytes:
    """The key the links' credentials are signed with, derived from JANUS_TOKEN_SECRET: every
    replica has it without a shared document, and changing the secret changes both."""
    return hmac.new(secret.encode(), LINK_KEY_CONTEXT, hashlib.sha256).digest()


def _entry(user_id: str) -> str:
    """A user id as a list entry: `,` and `:` separate the token's parts."""
    if any(character in user_id for character in ",:"):
        return "h-" + hashlib.sha256(user_id.encode()).hexdigest()[:32]
    return user_id
