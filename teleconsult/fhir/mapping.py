"""Appointment <-> teleconsultation, as pure functions: what a FHIR request asks of the
service (`appointment_input`), and how a record reads as an Appointment (`appointment_of`).

A participant's actor names them: its `identifier.value` (else the id of its
`reference`) is the external id, its `display` the name. With the static identity
provider the actor's type picks the group (FHIR_ACTOR_GROUPS); with one that knows the
users, groups and names come from it, as in the API. The expected number of participants
is our extension (`EXPECTED_PARTICIPANTS`); the caller's own entry carries the
virtual service (R5's, as R4's cross-version extension) once their link is out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fhir.resources.R4B.appointment import Appointment, AppointmentParticipant
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.reference import Reference
from pydantic import ValidationError

from teleconsult.configuration.fhir import ACTOR_TYPES
from teleconsult.core.domain import Participant, Phase, Teleconsultation
from teleconsult.core.participants import ParticipantsInput
from teleconsult.core.schedule import ScheduleInput
from teleconsult.errors import InvalidRequest, Problem
from teleconsult.fhir.r4 import served
from teleconsult.providers.protocols import ParticipantEntry

EXPECTED_PARTICIPANTS = "urn:teleconsult:fhir:StructureDefinition:expected-participants"
"""Extension (valuePositiveInt) on Appointment: how many participants the teleconsultation
has, known or not (the API's `participants.number`); without it, the participants given."""
VIRTUAL_SERVICE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService"
"""R5's Appointment.virtualService in R4; here on the caller's participant entry only."""
CHANNEL_SYSTEM = "urn:teleconsult:video-provider"
"""The system of `channelType`: the code is the configured VIDEO_PROVIDER."""
CREATE_STATUSES = frozenset({"booked", "proposed"})
NOT_KNOWN_YET = AppointmentParticipant(
    type=[CodeableConcept(text="participant not known yet")],
    required="required",
    status="needs-action",
)
"""The entry of each participant expected but not named yet (R4: a type, no actor)."""


@dataclass(frozen=True)
class AppointmentId:
    """The EHR's identifier of an Appointment (`Appointment.identifier`)."""

    system: str | None
    value: str

    def token(self) -> str:
        """As a token search writes it: `system|value`, or `value` alone."""
        return self.value if self.system is None else f"{self.system}|{self.value}"

    def as_json(self) -> dict[str, str]:
        return {"value": self.value} | ({"system": self.system} if self.system else {})


@dataclass(frozen=True)
class AppointmentInput:
    """What an Appointment asks of the service."""

    participants: ParticipantsInput
    schedule: ScheduleInput
    identifier: AppointmentId | None
    cancelled: bool


def parse_appointment(body: object) -> Appointment:
    """The body as an R4 Appointment, or a 400 naming each element at fault."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "Appointment":
        raise InvalidRequest(
            'The body must be an Appointment resource ("resourceType": "Appointment").',
            path="Appointment",
        )
    try:
        return Appointment.model_validate(body)
    except ValidationError as error:
        details = tuple(
            Problem(
                path=_element(problem["loc"]),
                message=problem["msg"].rstrip("."),
            )
            for problem in error.errors()[:10]
        )
        raise InvalidRequest(
            f"The body is not a valid R4 Appointment: {details[0]['path']}: "
            f"{details[0]['message']}.",
            details=details,
        ) from None


def _element(location: tuple[int | str, ...]) -> str:
    """pydantic's location of a problem as a FHIRPath (`Appointment.participant[0].status`)."""
    path = "Appointment"
    for step in location:
        path += f"[{step}]" if isinstance(step, int) else f".{step}"
    return path


def appointment_input(
    appointment: Appointment,
    groups_by_actor: Mapping[str, str] | None,
    allowed_statuses: frozenset[str] = CREATE_STATUSES,
) -> AppointmentInput:
    """What `appointment` asks: `groups_by_actor` None when the identity provider knows the
    users (then actors give ids only); `allowed_statuses` those this request may set."""
    status = appointment.status
    if status not in allowed_statuses:
        raise InvalidRequest(
            f"Appointment.status {status!r} cannot be set here; use one of "
            f"{', '.join(sorted(allowed_statuses))}.",
            path="Appointment.status",
        )
    given = appointment.participant or []
    entries = tuple(
        _entry(participant, index, groups_by_actor)
        for index, participant in enumerate(given)
        if participant.actor is not None or participant.type is None
    )
    number = _expected(appointment, len(given), len(entries))
    return AppointmentInput(
        participants=ParticipantsInput(number=number, entries=entries),
        schedule=_schedule(appointment),
        identifier=_identifier(appointment),
        cancelled=status == "cancelled",
    )


def _entry(
    participant: AppointmentParticipant, index: int, groups_by_actor: Mapping[str, str] | None
) -> ParticipantEntry:
    path = f"Appointment.participant[{index}]"
    if participant.required not in (None, "required"):
        raise InvalidRequest(
            f"{path}.required {participant.required!r} is not supported: every participant "
            "of a teleconsultation is required (leave it out, or send 'required').",
            path=f"{path}.required",
        )
    actor = participant.actor
    if actor is None:
        raise InvalidRequest(
            f"{path} needs an actor (the person) or, for a participant not known yet, a type "
            f"only; or send the expected number in the extension {EXPECTED_PARTICIPANTS}.",
            path=f"{path}.actor",
        )
    kind, reference_id = _reference(actor.reference)
    external_id = actor.identifier.value if actor.identifier else None
    external_id = external_id or reference_id
    if not external_id:
        raise InvalidRequest(
            f"{path}.actor must name the person: an identifier.value or a reference 'Type/id'.",
            path=f"{path}.actor",
        )
    if groups_by_actor is None:
        return ParticipantEntry(external_id, None, None, None, path)
    return ParticipantEntry(
        external_id=external_id,
        groups=(_group(actor.type or kind, groups_by_actor, path),),
        full_name=_display(actor.display, path),
        language=None,
        path=path,
    )


def _reference(reference: str | None) -> tuple[str | None, str | None]:
    """The (type, id) of a literal reference `Type/id` (or an absolute URL ending so)."""
    if not reference or "/" not in reference:
        return None, None
    kind, _, identifier = reference.rstrip("/").split("/_history/")[0].rpartition("/")
    return kind.rpartition("/")[2] or None, identifier or None


def _group(kind: str | None, groups_by_actor: Mapping[str, str], path: str) -> str:
    if kind is None or kind not in groups_by_actor:
        raise InvalidRequest(
            f"{path}.actor must be a {', '.join(ACTOR_TYPES)} (its reference 'Type/id' or its "
            f"type): the type gives the participant's group (FHIR_ACTOR_GROUPS); got {kind!r}.",
            path=f"{path}.actor.type",
        )
    return groups_by_actor[kind]


def _display(display: str | None, path: str) -> str:
    if not display or not display.strip():
        raise InvalidRequest(
            f"{path}.actor.display is required with the static identity provider: the "
            "participant's name, shown in the call.",
            path=f"{path}.actor.display",
        )
    return display


def _expected(appointment: Appointment, given: int, known: int) -> int:
    """The extension's number, else the participants given (those with a type only too:
    participants not known yet)."""
    values = [
        extension.valuePositiveInt or extension.valueInteger
        for extension in appointment.extension or ()
        if extension.url == EXPECTED_PARTICIPANTS
    ]
    if not values:
        return given
    if len(values) > 1 or not isinstance(values[0], int) or values[0] < known:
        raise InvalidRequest(
            f"The extension {EXPECTED_PARTICIPANTS} must appear once, with a valuePositiveInt "
            f"of at least the {known} participants named.",
            path="Appointment.extension",
        )
    return values[0]


def _schedule(appointment: Appointment) -> ScheduleInput:
    start, end, minutes = appointment.start, appointment.end, appointment.minutesDuration
    if start is None:
        raise InvalidRequest("Appointment.start is required.", path="Appointment.start")
    if end is None and minutes is None:
        raise InvalidRequest(
            "Appointment.end (or minutesDuration) is required.", path="Appointment.end"
        )
    if end is not None and minutes is not None and end - start != timedelta(minutes=minutes):
        raise InvalidRequest(
            f"Appointment.minutesDuration {minutes} does not match start and end "
            f"({int((end - start).total_seconds() // 60)} minutes apart); send one or make "
            "them agree.",
            path="Appointment.minutesDuration",
        )
    if end is not None:
        return ScheduleInput(start_date=start, end_date=end)
    return ScheduleInput(start_date=start, duration_in_seconds=int(minutes or 0) * 60)


def _identifier(appointment: Appointment) -> AppointmentId | None:
    identifiers = appointment.identifier or []
    if len(identifiers) > 1:
        raise InvalidRequest(
            "This service keeps one Appointment.identifier (the EHR's own id); "
            f"{len(identifiers)} were given.",
            path="Appointment.identifier",
        )
    if not identifiers:
        return None
    [identifier] = identifiers
    if not identifier.value:
        raise InvalidRequest(
            "Appointment.identifier[0].value is required.", path="Appointment.identifier"
        )
    return AppointmentId(identifier.system, identifier.value)


# -- a record, read as an Appointment --------------------------------------------------------


@dataclass(frozen=True)
class VirtualService:
    """The caller's own way into the call."""

    provider: str
    link: str
    max_participants: int


def fhir_status(record: Teleconsultation) -> str:
    """`cancelled` when trashed, `fulfilled` once the call ended, `arrived` while the provider
    says it is on, else `booked`."""
    phase = record.phase
    if phase is Phase.CANCELLED:
        return "cancelled"
    if phase is Phase.ENDED:
        return "fulfilled"
    if phase is Phase.ROOM_READY and record.attendance.call_started_at is not None:
        return "arrived"
    return "booked"


def actor_type(groups: Sequence[str], groups_by_actor: Mapping[str, str]) -> str | None:
    """The first actor type (in `ACTOR_TYPES` order) whose group the participant is in."""
    return next((kind for kind in ACTOR_TYPES if groups_by_actor.get(kind) in groups), None)


def appointment_of(
    record: Teleconsultation,
    groups_by_actor: Mapping[str, str],
    identifier: AppointmentId | None = None,
    *,
    caller_id: str | None = None,
    service: VirtualService | None = None,
) -> dict[str, Any]:
    """The record as an R4 Appointment; `service` goes on the entry of `caller_id`."""
    participants = [
        _participant(member, groups_by_actor, service if member.external_id == caller_id else None)
        for member in record.participants
    ]
    participants += [NOT_KNOWN_YET] * (record.participants_number - len(record.participants))
    appointment = Appointment(
        id=record.id,
        meta=Meta(versionId=str(record.version), lastUpdated=record.updated_at),
        extension=[
            Extension(url=EXPECTED_PARTICIPANTS, valuePositiveInt=record.participants_number)
        ],
        identifier=[Identifier(system=identifier.system, value=identifier.value)]
        if identifier
        else None,
        status=fhir_status(record),
        start=record.start_date,
        end=record.end_date,
        minutesDuration=int((record.end_date - record.start_date).total_seconds() // 60),
        participant=participants,
    )
    return served(appointment)


def _participant(
    member: Participant, groups_by_actor: Mapping[str, str], service: VirtualService | None
) -> AppointmentParticipant:
    return AppointmentParticipant(
        extension=[_virtual_service(service)] if service else None,
        actor=Reference(
            type=actor_type(member.groups, groups_by_actor),
            identifier=Identifier(value=member.external_id),
            display=member.full_name,
        ),
        required="required",
        status="accepted",
    )


def _virtual_service(service: VirtualService) -> Extension:
    return Extension(
        url=VIRTUAL_SERVICE,
        extension=[
            Extension(
                url="channelType",
                valueCoding=Coding(system=CHANNEL_SYSTEM, code=service.provider),
            ),
            Extension(url="addressUrl", valueUrl=service.link),
            Extension(url="maxParticipants", valuePositiveInt=service.max_participants),
        ],
    )
