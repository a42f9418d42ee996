"""Use cases: revoke one participant's link, remove them from the call, let them back in.

Each is one compare-and-set write of the record (the service's loop, `_change`, with the
room kept and no lock: `plan_credentials`), carrying its webhook event; then, for a
revocation or a removal, the provider is told (`LinkRevocation.revoke_link`) so that whoever
uses the earlier links is disconnected now. A provider without the capability answers 501
before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from teleconsult.core import revocation
from teleconsult.core.domain import Teleconsultation
from teleconsult.core.revocation import Asker
from teleconsult.core.service import TeleconsultationService
from teleconsult.core.transitions import plan_credentials
from teleconsult.errors import MissingCapability
from teleconsult.observability import logs
from teleconsult.providers.protocols import (
    CAPABILITIES,
    Caller,
    LinkRevocation,
    Revocation,
    UnrevocableLinks,
)

log = logging.getLogger("teleconsult.core.service")

Recorded = Callable[[], Awaitable[None]]
"""Writes the request's audit entry, once the change is written."""


class _Unchanged(Exception):
    """An unblock of a participant who is not blocked: nothing to write."""


@dataclass(eq=False)
class LinkRevocations:
    service: TeleconsultationService

    async def revoke(
        self, teleconsultation_id: str, external_id: str, asker: Asker, recorded: Recorded
    ) -> None:
        """`DELETE .../participants/{id}/link`: the participant's links stop working."""
        kind = revocation.LINK_REVOKED
        await self._revoke(teleconsultation_id, external_id, asker, kind, recorded)

    async def remove(
        self, teleconsultation_id: str, external_id: str, asker: Asker, recorded: Recorded
    ) -> None:
        """`PUT .../participants/{id}/block`: revoked, disconnected and kept out."""
        kind = revocation.REMOVED
        await self._revoke(teleconsultation_id, external_id, asker, kind, recorded)

    async def unblock(
        self, teleconsultation_id: str, external_id: str, asker: Asker, recorded: Recorded
    ) -> None:
        """`DELETE .../participants/{id}/block`: their next GET hands out a link again (a new
        one: the removal revoked the old). Unblocking someone not blocked writes nothing."""
        try:
            await self._write(teleconsultation_id, external_id, asker, revocation.UNBLOCKED)
        except _Unchanged:
            return
        await recorded()

    async def _revoke(
        self,
        teleconsultation_id: str,
        external_id: str,
        asker: Asker,
        kind: str,
        recorded: Recorded,
    ) -> None:
        """Written, recorded (the audit entry), then the provider disconnects them: a provider
        failure (502, 503, 504) leaves the revocation written, and a retry raises it again."""
        provider = self._provider()
        written = await self._write(teleconsultation_id, external_id, asker, kind)
        await recorded()
        if written.room is None:  # the rules refuse a revocation before the room exists
            return
        whom = revocation.target_of(written, external_id)
        await provider.revoke_link(
            Revocation(
                teleconsultation_id=written.id,
                provider_room_id=written.room.provider_room_id,
                provider_user_id=whom.provider_user_id,
                generation=whom.link_generation,
                removed=kind == revocation.REMOVED,
            )
        )

    def _provider(self) -> LinkRevocation:
        """The provider, if it can revoke links; else 501 naming it and why."""
        video = self.service.video
        if isinstance(video, LinkRevocation):
            return video
        why = video.revocation_refusal if isinstance(video, UnrevocableLinks) else ""
        raise MissingCapability(video.name, CAPABILITIES[LinkRevocation], why)

    async def _write(
        self, teleconsultation_id: str, external_id: str, asker: Asker, kind: str
    ) -> Teleconsultation:
        service = self.service
        caller = Caller(id=asker.id, groups=asker.groups)
        written: list[Teleconsultation] = []

        async def change(current: Teleconsultation, _: datetime) -> Teleconsultation:
            proposed = revocation.changed(current, kind, external_id, asker, service.write_policy)
            if proposed.participants == current.participants:
                raise _Unchanged()  # after the refusals: a stranger still gets their 403
            return proposed

        def announce(_: Teleconsultation, record: Teleconsultation) -> None:
            written.append(record)
            logs.event(
                log,
                kind.replace("participant.", "participant ").replace("_", " "),
                teleconsultationId=record.id,
                callerId=asker.id,
                participantId=external_id,
            )

        async def load(record_id: str, _: Caller) -> Teleconsultation:
            return await service.load(record_id)

        plan = partial(plan_credentials, kind=kind)
        await service._change(teleconsultation_id, caller, change, plan, announce, load=load)
        return written[-1]
