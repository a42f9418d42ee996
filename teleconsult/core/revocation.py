"""The rules of revoking one participant's link and removing them (issue 30): pure, no I/O.

A participant's links carry their `link_generation`; a revocation raises it, so every link
handed out before opens nothing, and the next GET hands out one of the new generation. A
removal also blocks them: their GET answers 403 `participant_blocked` until an unblock.
Neither changes the room, so both are allowed inside the immutable window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from teleconsult.core import domain
from teleconsult.core.domain import Participant, Teleconsultation, WritePolicy
from teleconsult.errors import Conflict, Forbidden, NotFound

LINK_REVOKED = "participant.link_revoked"
REMOVED = "participant.removed"
UNBLOCKED = "participant.unblocked"
KINDS: tuple[str, ...] = (LINK_REVOKED, REMOVED, UNBLOCKED)
"""The changes of one participant's credentials, each its webhook event type."""

NOT_ALLOWED_TO_REVOKE = (
    "Only the teleconsultation's creator, its plus participants, members of ADMIN_GROUPS or "
    "MANAGER_GROUPS, and the participant themselves may revoke a participant's link."
)
NOT_ALLOWED_TO_BLOCK = (
    "Only the teleconsultation's creator, its plus participants and members of ADMIN_GROUPS "
    "or MANAGER_GROUPS may remove a participant or let them back in."
)
BLOCKED = (
    "You were removed from this teleconsultation: no link is handed out to you. Ask its "
    "organiser to let you back in."
)


@dataclass(frozen=True)
class Asker:
    """Who asks for a revocation, removal or unblock, as the rules need them."""

    id: str | None
    groups: frozenset[str]
    manager: bool
    """In MANAGER_GROUPS."""


def may_block(record: Teleconsultation, asker: Asker, policy: WritePolicy) -> bool:
    """Identified callers who may change the teleconsultation (its creator, plus participants,
    admins), and managers; never an anonymous caller, whatever ALLOW_ANONYMOUS_WRITES says."""
    if asker.id is None:
        return False
    return asker.manager or domain.may_change(record, asker.id, asker.groups, policy)


def may_revoke(record: Teleconsultation, asker: Asker, target: str, policy: WritePolicy) -> bool:
    """As `may_block`, and a participant for their own link."""
    return (asker.id is not None and asker.id == target) or may_block(record, asker, policy)


def target_of(record: Teleconsultation, external_id: str) -> Participant:
    """The participant a request names, or 404."""
    found = record.participant(external_id)
    if found is None:
        raise NotFound(
            f"Participant {external_id!r} is not in teleconsultation {record.id!r}.",
            error="Participant not found",
        )
    return found


def changed(
    record: Teleconsultation, kind: str, external_id: str, asker: Asker, policy: WritePolicy
) -> Teleconsultation:
    """The record once `kind` is applied to the participant `external_id`, if `asker` may;
    else 403 (404 for an unknown participant, 409 before the room exists)."""
    allowed = (
        may_revoke(record, asker, external_id, policy)
        if kind == LINK_REVOKED
        else may_block(record, asker, policy)
    )
    if not allowed:
        raise Forbidden(NOT_ALLOWED_TO_REVOKE if kind == LINK_REVOKED else NOT_ALLOWED_TO_BLOCK)
    target = target_of(record, external_id)
    if kind != UNBLOCKED and record.room is None:
        raise Conflict(
            "This teleconsultation has no room yet (not every participant is known), so no "
            "link was handed out: there is nothing to revoke.",
            code="no_room",
        )
    updated = apply(target, kind)
    members = tuple(updated if p is target else p for p in record.participants)
    return replace(record, participants=members)


def apply(participant: Participant, kind: str) -> Participant:
    """A revocation raises the generation; a removal too, and blocks; an unblock unblocks."""
    if kind == UNBLOCKED:
        return replace(participant, blocked=False)
    generation = participant.link_generation + 1
    return replace(
        participant, link_generation=generation, blocked=participant.blocked or kind == REMOVED
    )


def kept_credentials(
    before: Sequence[Participant], after: Sequence[Participant]
) -> tuple[Participant, ...]:
    """`after`, each participant who was already there keeping their generation and block: a
    change of the participants never gives a revoked link back, nor lets a removed one in."""
    known = {p.external_id: p for p in before}
    return tuple(
        replace(p, link_generation=old.link_generation, blocked=old.blocked)
        if (old := known.get(p.external_id)) is not None
        else p
        for p in after
    )


def subject(before: Teleconsultation, after: Teleconsultation) -> Participant:
    """The one participant a credential change changed."""
    [changed_one] = [p for p in after.participants if before.participant(p.external_id) != p]
    return changed_one
