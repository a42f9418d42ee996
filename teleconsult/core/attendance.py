"""Provider events in: who joined the call when, stored on the teleconsultation and sent out.

A provider's event (verified by the provider, `ProviderEvents.verify_event`, or
reported by the provider itself, `ProviderContext.report_events`) names a room;
the live record pointing to that room takes it (`attendance_rules.attend`) with a
compare-and-set write that carries the event's webhook deliveries, as every
change does, and moves or withdraws the scheduled `call.no_show`. An event that
changes nothing (a provider's retry, a room no record points to any more, a user
who is not a participant) writes nothing and announces nothing, so a provider
may send an event any number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from teleconsult.core import attendance_rules, audit, domain
from teleconsult.core.audit import AuditLog, RequestTrace
from teleconsult.core.clock import Clock, format_date
from teleconsult.core.events import Announcer, participant_data
from teleconsult.errors import Conflict, VersionConflict
from teleconsult.observability import logs
from teleconsult.providers.protocols import ProviderEvent
from teleconsult.store.base import Records, RecordWrite

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
DECISIONS = {attendance_rules.ADMITTED: audit.ADMITTED, attendance_rules.DECLINED: audit.DECLINED}
"""The lobby's decisions, audited with the plus participant who made them as the actor."""
LOBBY = attendance_rules.LOBBY_EVENT_TYPES
PROVIDER_TRACE = RequestTrace("provider", None, None)
"""A decision reported by the provider itself: no request of ours carried it."""


class AttendanceRecorder:
    def __init__(
        self,
        records: Records,
        announcer: Announcer,
        clock: Clock,
        on_change: Callable[[str], None] = lambda _: None,
        audit_log: AuditLog | None = None,
    ) -> None:
        self.audit_log = audit_log
        """Where admissions and refusals are audited (set by the app)."""
        self.records = records
        self.announcer = announcer
        self.clock = clock
        self.on_change = on_change

    async def record(self, events: Sequence[ProviderEvent]) -> int:
        """Take each event in order; return how many changed a teleconsultation."""
        changed = 0
        for event in events:
            changed += await self._record(event)
        return changed

    async def _record(self, event: ProviderEvent) -> bool:
        if event.kind not in attendance_rules.PROVIDER_EVENT_TYPES:
            return False
        at = _milliseconds(event.at)  # as every store keeps dates
        for _ in range(MAX_ATTEMPTS):
            current = await self.records.find_by_room(event.provider_room_id)
            if current is None:
                log.info(
                    "provider event %s for room %s: no teleconsultation has it",
                    event.kind,
                    event.provider_room_id,
                )
                return False
            attendance = attendance_rules.attend(
                current, event.kind, event.provider_user_id, at, event.by
            )
            if attendance is None:
                return False
            written = replace(current, attendance=attendance, version=current.version + 1)
            deliveries = self.announcer.deliveries(
                event.kind, current, written, self.clock(), **_about(written, event, at)
            )
            try:
                await self.records.replace(
                    RecordWrite(written, current.version, deliveries=deliveries)
                )
            except VersionConflict:
                continue
            logs.event(
                log,
                event.kind.replace(".", " "),  # "participant joined", as the other event lines
                teleconsultationId=written.id,
                providerRoomId=event.provider_room_id,
                providerUserId=event.provider_user_id,
                providerEventId=event.event_id or None,
            )
            self.on_change(written.id)
            if deliveries:
                self.announcer.on_written()
            await self._audit(written, event)
            return True
        raise Conflict(
            "The teleconsultation kept changing while the provider event was recorded; the "
            "provider should send it again."
        )

    async def _audit(self, record: domain.Teleconsultation, event: ProviderEvent) -> None:
        """An admission or refusal, in the audit trail: who decided (actor), about whom."""
        action = DECISIONS.get(event.kind)
        if action is None or self.audit_log is None:
            return
        await self.audit_log.record(
            action,
            record.id,
            _external_id(record, event.by),
            PROVIDER_TRACE,
            participant=_external_id(record, event.provider_user_id),
        )


def _external_id(record: domain.Teleconsultation, provider_user_id: str | None) -> str | None:
    found = [p for p in record.participants if p.provider_user_id == provider_user_id]
    return found[0].external_id if found else None


def _about(record: domain.Teleconsultation, event: ProviderEvent, at: datetime) -> dict[str, Any]:
    """What a provider event's payload adds to the teleconsultation's snapshot."""
    about: dict[str, Any] = {"at": format_date(at)}
    if event.kind in (attendance_rules.JOINED, attendance_rules.LEFT, *LOBBY):
        about["participant"] = _participant(record, event.provider_user_id)
    if event.kind in DECISIONS:
        about["by"] = _participant(record, event.by) if event.by else None
    return about


def _participant(record: domain.Teleconsultation, provider_user_id: str | None) -> dict[str, Any]:
    [participant] = [p for p in record.participants if p.provider_user_id == provider_user_id]
    return participant_data(participant)


def _milliseconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
