"""A teleconsultation as the caller may see it as an Appointment: who may read it, and the
caller's own link (audited as every link handed out) once the window opened."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from teleconsult.api.trace import audited
from teleconsult.core import audit, domain
from teleconsult.core.domain import RecordState, Teleconsultation
from teleconsult.core.service import require_caller
from teleconsult.errors import NotFound, Unauthorized
from teleconsult.fhir.identifiers import Identifiers
from teleconsult.fhir.mapping import VirtualService, appointment_of
from teleconsult.observability import redaction
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES, Services
from teleconsult.store.documents import is_object_id


def identifiers_of(services: Services) -> Identifiers:
    return Identifiers(services.store.provider_data, services.store.records, services.service.clock)


def groups_by_actor(services: Services) -> dict[str, str]:
    return services.settings.fhir.groups_by_actor()


async def any_record(services: Services, record_id: str) -> Teleconsultation:
    """The record with this id, cancelled ones too (they read as `cancelled`), or 404."""
    record = await services.store.records.get_any(record_id) if is_object_id(record_id) else None
    if record is None:
        raise NotFound(
            f"No Appointment has the id {record_id!r}: it never existed or was deleted.",
            error=f"Room with id {record_id} not found on CRUD",
        )
    return record


def may_read(services: Services, record: Teleconsultation, caller: Caller) -> bool:
    """Its participants, and whoever may change it or list anyone's (a manager)."""
    caller_id = require_caller(caller)
    if record.participant(caller_id) is not None or services.authenticator.is_manager(caller):
        return True
    groups = caller.groups or frozenset()
    return domain.may_change(record, caller_id, groups, services.service.write_policy)


async def appointment_view(request: web.Request, record_id: str, caller: Caller) -> dict[str, Any]:
    """The Appointment `caller` sees: their own virtual service once their link is out."""
    services = request.app[SERVICES]
    record = await any_record(services, record_id)
    if not may_read(services, record, caller):
        raise Unauthorized("The caller is not a participant of this teleconsultation.")
    service = None
    if record.state is RecordState.PUBLIC and record.participant(str(caller.id)) is not None:
        join = await services.service.join(record_id, caller)
        if join.access_link is not None:  # recorded before it is handed out
            await audited(request, audit.LINK, record_id, caller, participant=caller.id)
            service = VirtualService(
                services.video.name, join.access_link, record.participants_number
            )
    redaction.sensitive(p.full_name for p in record.participants)
    identifier = await identifiers_of(services).of_record(record_id)
    return appointment_of(
        record, groups_by_actor(services), identifier, caller_id=caller.id, service=service
    )
