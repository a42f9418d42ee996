"""The five endpoints of the original usage document: parse, call the service, answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_apigami import docs, json_schema, response_schema
from apispec import APISpec
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import Schema, ValidationError

from teleconsult.api.answers import json_answer
from teleconsult.api.hardening import NO_STORE
from teleconsult.api.idempotency import DOC_PARAMETER as IDEMPOTENCY_PARAMETER
from teleconsult.api.idempotency import idempotent
from teleconsult.api.schemas import (
    CreatedSchema,
    CreateTeleconsultationSchema,
    ErrorSchema,
    JoinQuerySchema,
    JoinSchema,
    ParticipantDataSchema,
    UpdateTeleconsultationSchema,
)
from teleconsult.api.trace import audited
from teleconsult.core import audit
from teleconsult.core.domain import Phase
from teleconsult.core.joining import JoinInfo
from teleconsult.core.participants import ParticipantsInput
from teleconsult.core.schedule import ScheduleInput
from teleconsult.errors import NoPlusUser
from teleconsult.providers.protocols import Caller, ParticipantEntry
from teleconsult.services import SERVICES
from teleconsult.validation import invalid

BODY = web.RequestKey("body", dict)
TAGS = ["teleconsultations"]


def errors(*statuses: int) -> dict[int, dict[str, Any]]:
    reasons = {
        400: "The request is invalid; `message` says what to change.",
        401: "`Unauthorized user`: the caller is unknown, not a participant, or has no valid "
        "bearer token (when tokens are verified).",
        403: "The caller may not do this: not the teleconsultation's creator, a plus "
        "participant or in ADMIN_GROUPS; not in MANAGER_GROUPS (when set); or not identified "
        "while ALLOW_ANONYMOUS_WRITES is false.",
        404: "`Room with id <id> not found on CRUD`: no such teleconsultation (or it was deleted).",
        409: "The teleconsultation is locked (immutable window) or kept changing, or a request "
        "with the same Idempotency-Key is still running.",
        408: "The body did not arrive within HTTP_READ_TIMEOUT_MS.",
        413: "The body (64 KiB of JSON at most) or the file is too large.",
        415: "The body was not sent as JSON (or, for an image, not a JPEG).",
        422: "The Idempotency-Key was already used for another request.",
        429: "The caller holds IDEMPOTENCY_MAX_KEYS_PER_CALLER unexpired Idempotency-Keys.",
        501: "The configured video provider does not offer this (SDK credentials, uploads or "
        "virtual backgrounds); `message` names the provider and what it lacks.",
        502: "The video or identity provider gave a bad answer; `message` names the operation.",
        503: "The store or a provider cannot be reached.",
        504: "A provider did not answer in time.",
    }
    return {status: {"schema": ErrorSchema, "description": reasons[status]} for status in statuses}


WRITE_ERRORS = (400, 401, 403, 404, 408, 409, 413, 415, 502, 503, 504)
KEYED_WRITE_ERRORS = (*WRITE_ERRORS, 422, 429)


def body(schema: type[Schema], *, required: bool = True) -> Callable[[Handler], Handler]:
    """Validate the JSON body with `schema` and put the result under `BODY`."""
    return json_schema(schema, put_into=BODY, required=required)  # type: ignore[arg-type]


def _query_parameters(schema: type[Schema]) -> list[dict[str, Any]]:
    """The OpenAPI parameters of a query a handler parses itself, read from its schema."""
    converter = OpenAPIConverter(
        "3.0.3", schema_name_resolver=lambda _: None, spec=APISpec("query", "1", "3.0.3")
    )
    parameters: list[dict[str, Any]] = converter.schema2parameters(schema, location="query")
    return parameters


JOIN_QUERY_PARAMETERS = _query_parameters(JoinQuerySchema)


def _join_query(request: web.Request) -> dict[str, Any]:
    if not request.query_string:
        return {}
    try:
        query: dict[str, Any] = JoinQuerySchema().load(dict(request.query))
    except ValidationError as error:
        raise invalid(error.messages, root="query") from None
    return query


async def caller_of(request: web.Request) -> Caller:
    return await request.app[SERVICES].authenticator.caller(request)


async def manager_of(request: web.Request) -> Caller:
    """The caller of a POST, PATCH or DELETE, who must be a manager when MANAGER_GROUPS is set."""
    authenticator = request.app[SERVICES].authenticator
    caller = await authenticator.caller(request)
    authenticator.authorize_write(caller)
    return caller


async def operator_of(request: web.Request) -> Caller:
    """The caller of an operator route, who must be an identified member of ADMIN_GROUPS."""
    authenticator = request.app[SERVICES].authenticator
    caller = await authenticator.caller(request)
    authenticator.authorize_operator(caller)
    return caller


def operator_errors(*statuses: int) -> dict[int, dict[str, Any]]:
    """`errors`, with the 403 an operator route answers."""
    answers = errors(*statuses)
    answers[403] = {
        "schema": ErrorSchema,
        "description": "The caller is not an identified member of ADMIN_GROUPS (nobody is "
        "while it is unset); MANAGER_GROUPS does not open these routes.",
    }
    return answers


def _participants(value: list[str] | dict[str, Any], *, creating: bool) -> ParticipantsInput:
    """The body's participants; an update without `data` keeps the known participants."""
    if isinstance(value, list):
        entries = tuple(
            ParticipantEntry(
                external_id=user_id,
                groups=None,
                full_name=None,
                language=None,
                path=f"participants[{index}]",
            )
            for index, user_id in enumerate(value)
        )
        return ParticipantsInput(number=len(entries), entries=entries, bare_ids=True)
    if "data" not in value:
        return ParticipantsInput(number=value["number"], entries=() if creating else None)
    entries = tuple(
        _entry(data, f"participants.data[{index}]") for index, data in enumerate(value["data"])
    )
    return ParticipantsInput(number=value["number"], entries=entries)


def _entry(data: dict[str, Any], path: str) -> ParticipantEntry:
    groups = data.get("groups")
    if groups is None and "group" in data:
        groups = [data["group"]]
    return ParticipantEntry(
        external_id=data["userExternalId"],
        groups=tuple(groups) if groups is not None else None,
        full_name=data.get("fullName"),
        language=data.get("language"),
        path=path,
    )


def _schedule(body: dict[str, Any]) -> ScheduleInput:
    return ScheduleInput(
        start_date=body.get("start_date"),
        end_date=body.get("end_date"),
        duration_in_seconds=body.get("duration_in_seconds"),
    )


@contextmanager
def documented_plus_failure(route: str) -> Iterator[None]:
    """The plus rule's failure carries the original's documented `error`, which names the
    route the caller used (`Failed POST /teleconsultation: no plus user in room`)."""
    try:
        yield
    except NoPlusUser as failure:
        failure.error = f"Failed {route}: no plus user in room"
        raise


def _keyed_docs(
    operation_id: str,
    summary: str,
    description: str,
    answers: dict[int, dict[str, Any]] | None = None,
) -> Callable[[Handler], Handler]:
    """The documentation of a keyed write (`_keyed_write`): its `Idempotency-Key` and errors."""
    return docs(
        tags=TAGS,
        operationId=operation_id,
        summary=summary,
        description=description,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={**(answers or {}), **errors(*KEYED_WRITE_ERRORS)},
    )


async def _keyed_write(
    request: web.Request,
    route: str,
    write: Callable[[dict[str, Any], Caller], Awaitable[web.Response]],
) -> web.Response:
    """A POST that may carry an `Idempotency-Key` (creating, adding a participant): a
    manager's body written once per key, its plus-rule failure naming the route."""
    body = request[BODY]
    caller = await manager_of(request)

    async def once() -> web.Response:
        with documented_plus_failure(route):
            return await write(body, caller)

    return await idempotent(request, caller, body, once)


@_keyed_docs(
    "createTeleconsultation",
    "Create a teleconsultation",
    "Creates the provider room at once when every participant is known.",
)
@body(CreateTeleconsultationSchema)
@response_schema(CreatedSchema, 201, description="Created; `roomId` is the teleconsultation id.")
async def create_teleconsultation(request: web.Request) -> web.Response:
    async def create(body: dict[str, Any], caller: Caller) -> web.Response:
        room_id = await request.app[SERVICES].service.create(
            _participants(body["participants"], creating=True), _schedule(body), caller
        )
        await audited(request, audit.CREATED, room_id, caller, fields=body)
        return json_answer({"roomId": room_id}, status=201)

    return await _keyed_write(request, "POST /teleconsultation", create)


@docs(
    tags=TAGS,
    operationId="updateTeleconsultation",
    summary="Update a teleconsultation",
    description=(
        "Only the fields given change. A change that affects the room replaces it. "
        "Refused with 409 once the teleconsultation is locked."
    ),
    responses={204: {"description": "Updated."}, **errors(*WRITE_ERRORS)},
)
@body(UpdateTeleconsultationSchema)
async def update_teleconsultation(request: web.Request) -> web.Response:
    body = request[BODY]
    participants = body.get("participants")
    caller = await manager_of(request)
    room_id = request.match_info["roomId"]
    with documented_plus_failure("PATCH /teleconsultation"):
        await request.app[SERVICES].service.update(
            room_id,
            _participants(participants, creating=False) if participants is not None else None,
            _schedule(body),
            caller,
        )
    await audited(request, audit.UPDATED, room_id, caller, fields=body)
    return web.Response(status=204)


@_keyed_docs(
    "addParticipant",
    "Add a participant",
    "Creates the provider room when this participant is the last one expected.",
    answers={201: {"description": "Added; empty body."}},
)
@body(ParticipantDataSchema)
async def add_participant(request: web.Request) -> web.Response:
    room_id = request.match_info["roomId"]

    async def add(body: dict[str, Any], caller: Caller) -> web.Response:
        entry = _entry(body, "body")
        await request.app[SERVICES].service.add_participant(room_id, entry, caller)
        await audited(
            request, audit.PARTICIPANT_ADDED, room_id, caller, participant=entry.external_id
        )
        return web.Response(status=201)

    route = f"POST /teleconsultation/{room_id}/participants/data"
    return await _keyed_write(request, route, add)


@docs(
    tags=TAGS,
    operationId="getTeleconsultation",
    summary="The caller's join link",
    description=(
        "`accessLinkURL` is null until the room can no longer change (all participants "
        "known and the immutable window begun): poll until then, or pass `waitSeconds` and "
        "the answer comes as soon as the link is available (within that many seconds). "
        "Once the provider reported that the call ended for everyone, `state` is `ended` "
        "and `accessLinkURL` stays null."
    ),
    parameters=JOIN_QUERY_PARAMETERS,
    responses=errors(400, 401, 404, 503),
)
@response_schema(JoinSchema, 200, description="The caller's view of the teleconsultation.")
async def get_teleconsultation(request: web.Request) -> web.Response:
    # Parsed here rather than by a querystring schema: polling sends no query at all,
    # and the hot path skips the parser when there is nothing to parse.
    query = _join_query(request)
    room_id, caller = request.match_info["roomId"], await caller_of(request)
    join = await _join(request, caller, query)
    wait = query.get("waitSeconds", 0)
    if wait and join.access_link is None and not join.ended:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while join.access_link is None and not join.ended and (left := deadline - loop.time()) > 0:
            waiter = request.app[SERVICES].waiter
            await waiter.wait(room_id, join.version, join.opens_at, left)
            join = await _join(request, caller, query)
    if join.access_link is not None:  # recorded before it is handed out: no entry, no link
        await audited(request, audit.LINK, room_id, caller, participant=caller.id)
    body: dict[str, Any] = {
        "bandyerUserId": join.provider_user_id,
        "accessLinkURL": join.access_link,
        "participantsBandyerCall": [
            {"bandyerUserId": user_id, "fullName": full_name}
            for user_id, full_name in join.participants
        ],
    }
    if join.ended:
        body["state"] = Phase.ENDED.value
    if join.provider_room_id is not None:
        details = await request.app[SERVICES].room_details.describe(join.provider_room_id)
        if details is not None:
            body["details"] = details
    if join.attendance is not None:  # the cached description is shared: not changed in place
        body["details"] = {**body.get("details", {}), "attendance": join.attendance}
    return json_answer(body, headers=NO_STORE)  # a link is a bearer credential


async def _join(request: web.Request, caller: Caller, query: dict[str, Any]) -> JoinInfo:
    return await request.app[SERVICES].service.join(
        request.match_info["roomId"],
        caller,
        language=query.get("language"),
        use_background=query.get("useBackground"),
    )


@docs(
    tags=TAGS,
    operationId="deleteTeleconsultation",
    summary="Cancel a teleconsultation",
    description=(
        "Allowed even when locked, to the caller who may change it. First the deletion of "
        "the provider room is written down (an outbox job in the store), then the record is "
        "marked TRASH and stops pointing to the room: from then on GET answers 404 and no "
        "link is handed out. Then the room is deleted. This never fails because of the video "
        "provider: if the room cannot be deleted now, the answer is still 204 and the "
        "reconciler (every RECONCILE_INTERVAL_MS, in any replica) retries the deletion until "
        "it succeeds. A second DELETE answers 404."
    ),
    responses={
        204: {
            "description": "Cancelled: the record is trashed; the room is deleted, now or "
            "by the reconciler."
        },
        **errors(400, 401, 403, 404, 503, 504),
        409: {
            "schema": ErrorSchema,
            "description": "`contention`: the teleconsultation kept changing while it was "
            "being cancelled; nothing was done, retry.",
        },
    },
)
async def delete_teleconsultation(request: web.Request) -> web.Response:
    room_id, caller = request.match_info["roomId"], await manager_of(request)
    await request.app[SERVICES].service.cancel(room_id, caller)
    await audited(request, audit.CANCELLED, room_id, caller)
    return web.Response(status=204)


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    # The three methods of /teleconsultation/{roomId} one after the other: aiohttp gives them
    # one resource, so a poll is matched by the first pattern it tries after the plain path.
    return [
        app.router.add_post("/teleconsultation", create_teleconsultation),
        app.router.add_get("/teleconsultation/{roomId}", get_teleconsultation, allow_head=False),
        app.router.add_patch("/teleconsultation/{roomId}", update_teleconsultation),
        app.router.add_delete("/teleconsultation/{roomId}", delete_teleconsultation),
        app.router.add_post("/teleconsultation/{roomId}/participants/data", add_participant),
    ]
