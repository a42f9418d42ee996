"""Who the participants are: identified by the identity provider, given their level, and
mapped to provider users (one provider user never stands for two external ids)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from teleconsult.core import domain
from teleconsult.core.domain import ANONYMOUS, Level, Participant, Privileges
from teleconsult.errors import Conflict
from teleconsult.observability import redaction
from teleconsult.providers.helpers import gather_all
from teleconsult.providers.protocols import (
    Caller,
    Identity,
    IdentityProvider,
    ParticipantEntry,
    VideoProvider,
)
from teleconsult.store.base import UserMap

log = logging.getLogger("teleconsult.core.service")
"""The use cases' logger, as operators know it."""


@dataclass(frozen=True)
class ParticipantsInput:
    number: int
    entries: tuple[ParticipantEntry, ...] | None
    """The participants given; None (an update without `data`) keeps the known ones."""
    bare_ids: bool = False
    """True for the array-of-user-ids form, which needs an identity provider that resolves ids."""


@dataclass(frozen=True)
class Identified:
    """A participant as the identity provider knows them, with their level."""

    entry: ParticipantEntry
    identity: Identity
    level: Level


class ParticipantDirectory:
    """Identifies participants and gives them provider users."""

    def __init__(
        self,
        identity: IdentityProvider,
        video: VideoProvider,
        users: UserMap,
        privileges: Privileges,
    ) -> None:
        self.identity = identity
        self.video = video
        self.users = users
        self.privileges = privileges

    async def participants(
        self, participants: ParticipantsInput, caller: Caller, *, check_plus: bool
    ) -> list[Participant]:
        """Identify the given participants and give them provider users."""
        identified = await self.identified(participants, caller, check_plus=check_plus)
        return await self.with_provider_users(identified, caller)

    async def identified(
        self, participants: ParticipantsInput, caller: Caller, *, check_plus: bool
    ) -> list[Identified]:
        """Identify the given participants. When they are everyone and `check_plus` is set,
        the plus rule is checked too, so a refused request creates no provider user."""
        identified = await self._identify(participants.entries or (), caller)
        if check_plus and len(identified) == participants.number:
            domain.check_plus_rule([i.level for i in identified])
        return identified

    async def _identify(
        self, entries: Sequence[ParticipantEntry], caller: Caller
    ) -> list[Identified]:
        identities = await self.identity.identify(entries, caller)
        redaction.sensitive(identity.full_name for identity in identities)
        return [
            Identified(
                entry=entry,
                identity=identity,
                level=domain.level_of_participant(
                    self.privileges, identity.external_id, identity.groups, entry.path
                ),
            )
            for entry, identity in zip(entries, identities, strict=True)
        ]

    async def with_provider_users(
        self, identified: Sequence[Identified], caller: Caller
    ) -> list[Participant]:
        """Map each participant to a provider user (`provider_users`)."""
        wanted = [(i.identity.external_id, i.level) for i in identified]
        provider_user_ids = await self.provider_users(wanted, caller)
        return [
            Participant(
                external_id=i.identity.external_id,
                groups=i.identity.groups,
                full_name=i.identity.full_name,
                language=i.entry.language,
                level=i.level,
                provider_user_id=provider_user_id,
            )
            for i, provider_user_id in zip(identified, provider_user_ids, strict=True)
        ]

    async def provider_user(self, external_id: str, level: Level, caller: Caller) -> str:
        """The provider user of one external id (`provider_users`)."""
        [user] = await self.provider_users([(external_id, level)], caller)
        return user

    async def provider_users(
        self, wanted: Sequence[tuple[str, Level]], caller: Caller
    ) -> list[str]:
        """The provider user of each (external id, level), created and mapped the first time.

        The new ones are created at the provider concurrently (creating a user is
        idempotent, so a failure undoes nothing), then mapped in one store write: one
        commit for them all, not one each on the request's critical path. A mapping a
        concurrent request wrote first wins.

        A provider user never stands for two external ids: one participant must not get
        another's link or credentials. Provider ids are derived injectively
        (`stable_user_id`); a mapping that shares one anyway (written by a version before
        that held, or by a provider that reuses ids) is refused, not used, and then no new
        mapping is written.
        """
        provider, users = self.video.name, self.users
        external_ids = [external_id for external_id, _ in wanted]
        found = await gather_all(*(users.find_user(provider, e) for e in external_ids))
        known = {e: user for e, user in zip(external_ids, found, strict=True) if user is not None}
        unknown = {e: level for e, level in wanted if e not in known}
        created = await gather_all(*(self.video.ensure_user(e, lv) for e, lv in unknown.items()))
        new = dict(zip(unknown, created, strict=True))
        chosen = {e: known[e] if e in known else new[e] for e in external_ids}
        holders = await gather_all(*(users.holders(provider, u) for u in chosen.values()))
        first_holder: dict[str, str] = {}  # within this request: a provider reusing ids
        for (external_id, user), held_by in zip(chosen.items(), holders, strict=True):
            shared = first_holder.setdefault(user, external_id) != external_id
            if shared or any(holder != external_id for holder in held_by):
                log.warning("user map: %s provider user %s stands for several ids", provider, user)
                raise Conflict(
                    f"Participant {external_id!r} cannot be given a {provider} user: the one "
                    "derived for it already stands for another user id. An operator must "
                    "correct the user map (docs/operations.md, Security).",
                    code="user_map_conflict",
                )
        stored = known | await users.add_users(provider, new, caller.id or ANONYMOUS)
        return [stored[e] for e in external_ids]
