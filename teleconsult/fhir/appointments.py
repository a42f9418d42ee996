"""`/fhir/R4/Appointment[/{id}]`: create, read, update (PUT, JSON Patch) and cancel, each
through the service the API uses, with its rules, permissions, events and audit."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch
from aiohttp import hdrs, web

from teleconsult.api.hardening import NO_STORE
from teleconsult.api.teleconsultations import caller_of, manager_of
from teleconsult.api.trace import audited
from teleconsult.core import audit
from teleconsult.errors import Conflict, InvalidRequest, ServiceError
from teleconsult.fhir.http import (
    JSON_PATCH,
    RESOURCE_TYPES,
    base_url,
    fhir_answer,
    json_body,
    method_not_allowed,
)
from teleconsult.fhir.identifiers import Identifiers
from teleconsult.fhir.mapping import (
    CREATE_STATUSES,
    AppointmentId,
    appointment_input,
    appointment_of,
    fhir_status,
    parse_appointment,
)
from teleconsult.fhir.views import appointment_view, groups_by_actor, identifiers_of
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES, Services
from teleconsult.store.documents import new_teleconsultation_id

CLAIM_WAIT_SECONDS = 5.0
"""How long a conditional create waits for the record of a concurrent one with its identifier."""
AUDITED_FIELDS = ("participant", "start", "end", "minutesDuration", "extension", "status")


def groups_for_input(services: Services) -> dict[str, str] | None:
    """Groups by actor type, or None when the identity provider knows the users (auth0)."""
    return None if services.identity.resolves_bare_ids else groups_by_actor(services)


def if_none_exist(request: web.Request) -> AppointmentId | None:
    """The identifier of a conditional create's `If-None-Exist: identifier=system|value`."""
    header = request.headers.get("If-None-Exist")
    if header is None:
        return None
    query = dict(parse_qsl(header.lstrip("?"), keep_blank_values=True))
    if set(query) != {"identifier"} or not query["identifier"].rpartition("|")[2]:
        raise InvalidRequest(
            "If-None-Exist must be 'identifier=system|value' (or 'identifier=value'): this "
            "service matches conditional creates on Appointment.identifier only.",
            path="If-None-Exist",
        )
    system, bar, value = query["identifier"].rpartition("|")
    return AppointmentId(system or None, value) if bar else AppointmentId(None, value)


def _fields(body: dict[str, Any]) -> list[str]:
    return [name for name in AUDITED_FIELDS if name in body]


async def create(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    caller = await manager_of(request)
    body = await json_body(request, RESOURCE_TYPES)
    wanted = appointment_input(parse_appointment(body), groups_for_input(services))
    condition = if_none_exist(request)
    if condition is not None and condition != wanted.identifier:
        raise InvalidRequest(
            "If-None-Exist must name the body's own Appointment.identifier "
            "(identifier=system|value): that is what is kept and matched.",
            path="If-None-Exist",
        )
    identifiers, record_id = identifiers_of(services), new_teleconsultation_id()
    if wanted.identifier is not None:
        holder = await identifiers.claim(wanted.identifier, record_id)
        if holder is not None:
            return await _existing(
                request, identifiers, holder, caller, conditional=bool(condition)
            )
    try:
        await services.service.create(wanted.participants, wanted.schedule, caller, record_id)
    except ServiceError as error:
        # Freed when nothing was written, so a corrected retry may take it; else kept (a
        # claim without its record is taken over once stale).
        if wanted.identifier is not None and not error.may_have_written:
            await identifiers.release(wanted.identifier, record_id)
        raise
    await audited(request, audit.CREATED, record_id, caller, fields=_fields(body))
    location = f"{base_url(request)}/Appointment/{record_id}"
    resource = await appointment_view(request, record_id, caller)
    return _resource_answer(resource, status=201, location=location)


async def _existing(
    request: web.Request,
    identifiers: Identifiers,
    holder: str,
    caller: Caller,
    *,
    conditional: bool,
) -> web.Response:
    """A conditional create's match (200), once the record holding its identifier exists."""
    if not conditional:
        raise Conflict(
            f"Appointment/{holder} already has this Appointment.identifier; send "
            "If-None-Exist: identifier=system|value to get it back instead of an error.",
            code="contention",
        )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLAIM_WAIT_SECONDS
    while await identifiers.records.get_any(holder) is None:
        if loop.time() > deadline:
            raise Conflict(
                f"Another request is creating Appointment/{holder} with this identifier; "
                "retry in a moment to get it.",
                code="contention",
            )
        await asyncio.sleep(0.05)
    return _resource_answer(await appointment_view(request, holder, caller))


def _resource_answer(
    resource: dict[str, Any], *, status: int = 200, location: str | None = None
) -> web.Response:
    headers = {**NO_STORE, hdrs.ETAG: f'W/"{resource["meta"]["versionId"]}"'}
    if location is not None:
        headers[hdrs.LOCATION] = location
    return fhir_answer(resource, status=status, headers=headers)


async def read(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    return _resource_answer(await appointment_view(request, request.match_info["id"], caller))


async def replace(request: web.Request) -> web.Response:
    """PUT: the whole Appointment, as the record should become (or `cancelled`)."""
    caller = await manager_of(request)
    body = await json_body(request, RESOURCE_TYPES)
    return await _apply(request, caller, body)


async def patch(request: web.Request) -> web.Response:
    """JSON Patch (RFC 6902) on the Appointment as it reads now, then as a PUT of the result."""
    caller = await manager_of(request)
    operations = await json_body(request, (JSON_PATCH,))
    if not isinstance(operations, list):  # apply_patch would read a string as JSON text
        raise InvalidRequest(
            "The body must be a JSON Patch (RFC 6902): an array of operations.", path="body"
        )
    services = request.app[SERVICES]
    record_id = request.match_info["id"]
    current = await services.service.load_for_change(record_id, caller)
    identifier = await identifiers_of(services).of_record(record_id)
    document = appointment_of(current, groups_by_actor(services), identifier)
    try:
        patched = jsonpatch.apply_patch(document, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as error:
        raise InvalidRequest(
            f"The JSON Patch cannot be applied to Appointment/{record_id}: {error}.",
            path="Appointment",
        ) from None
    return await _apply(request, caller, patched)


async def _apply(request: web.Request, caller: Caller, body: object) -> web.Response:
    services = request.app[SERVICES]
    record_id = request.match_info["id"]
    appointment = parse_appointment(body)
    if appointment.id not in (None, record_id):
        raise InvalidRequest(
            f"Appointment.id {appointment.id!r} is not the id in the URL ({record_id!r}).",
            path="Appointment.id",
        )
    current = await services.service.load_for_change(record_id, caller)
    allowed = CREATE_STATUSES | {"cancelled", fhir_status(current)}
    wanted = appointment_input(appointment, groups_for_input(services), allowed)
    kept = await identifiers_of(services).of_record(record_id)
    if wanted.identifier not in (None, kept):
        raise InvalidRequest(
            "Appointment.identifier cannot change: it is the EHR's id this Appointment was "
            "created with.",
            path="Appointment.identifier",
        )
    if wanted.cancelled:
        await services.service.cancel(record_id, caller)
        await audited(request, audit.CANCELLED, record_id, caller)
    else:
        await services.service.update(record_id, wanted.participants, wanted.schedule, caller)
        fields = _fields(body) if isinstance(body, dict) else []
        await audited(request, audit.UPDATED, record_id, caller, fields=fields)
    return _resource_answer(await appointment_view(request, record_id, caller))


async def delete(request: web.Request) -> web.Response:
    caller = await manager_of(request)
    record_id = request.match_info["id"]
    await request.app[SERVICES].service.cancel(record_id, caller)
    await audited(request, audit.CANCELLED, record_id, caller)
    return web.Response(status=204)


INSTANCE = {"GET": read, "PUT": replace, "PATCH": patch, "DELETE": delete}


async def instance(request: web.Request) -> web.StreamResponse:
    handler = INSTANCE.get(request.method)
    if handler is None:
        return method_not_allowed(request, tuple(INSTANCE))
    return await handler(request)
