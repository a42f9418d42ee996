"""A participant's LiveKit identity: their provider user id, and their link generation once
their link was revoked (issue 30).

LiveKit disconnects the older session when a second one joins with the same identity, so a
revoked token reused must not carry the identity of the new one: from the first revocation
on, the identity is `<provider user id>~<generation>` (`~` is never in a provider user id),
and a participant removed is every identity of an earlier generation.
"""

from __future__ import annotations

SEPARATOR = "~"


def identity(provider_user_id: str, generation: int) -> str:
    """The identity of the participant's tokens of this link generation."""
    return provider_user_id if generation == 0 else f"{provider_user_id}{SEPARATOR}{generation}"


def user_of(identity_: str) -> str:
    """The provider user an identity stands for (events and details name the user)."""
    return identity_.split(SEPARATOR, 1)[0]


def generation_of(identity_: str) -> int:
    """The link generation of an identity (0 without a suffix, or one not ours)."""
    _, _, suffix = identity_.partition(SEPARATOR)
    return int(suffix) if suffix.isdecimal() else 0
