"""The pure rules of the FHIR interface: Appointment <-> teleconsultation, the R4 checks, the
search parameters and the actor-group setting."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from multidict import MultiDict

from teleconsult.configuration.fhir import FhirSettings
from teleconsult.core.domain import (
    Attendance,
    Level,
    Participant,
    Phase,
    RecordState,
    Room,
    RoomSpec,
)
from teleconsult.errors import ConfigurationError, InvalidRequest
from teleconsult.fhir.capability import capability_statement
from teleconsult.fhir.mapping import (
    AppointmentId,
    VirtualService,
    actor_type,
    appointment_input,
    appointment_of,
    fhir_status,
    parse_appointment,
)
from teleconsult.fhir.r4 import parsed, r4_problems
from teleconsult.fhir.search import search_filters
from teleconsult.providers.protocols import ParticipantEntry
from tests.fhir_helpers import DOCTOR_ACTOR, EXPECTED, PATIENT_ACTOR, appointment
from tests.store_contract.helpers import record

GROUPS = FhirSettings.from_environ({}).groups_by_actor()
START = datetime(2030, 2, 22, 15, 30, tzinfo=UTC)
DOCTOR = Participant("doctor-1", ("doctor",), "Joe Smith", None, Level.PLUS, "u-1")
PATIENT = Participant("patient-1", ("patient",), "Jane Doe", None, Level.BASIC, "u-2")
RECORD = record(
    id="0123456789abcdef01234567",
    participants=(DOCTOR, PATIENT),
    start_date=START,
    end_date=START + timedelta(minutes=30),
    version=3,
    updated_at=START,
)
ROOM = Room("room-1", RoomSpec((), None, True, "none"), {})


def test_the_default_actor_groups_are_the_issues() -> None:
    assert GROUPS == {
        "Practitioner": "doctor",
        "PractitionerRole": "doctor",
        "Patient": "patient",
        "RelatedPerson": "patient",
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Practitioner:doctor", "must give a group to every actor type; PractitionerRole, "
         "Patient, RelatedPerson has none."),
        ("Device:x", "must be Type:group pairs with a Type among Practitioner, "
         "PractitionerRole, Patient, RelatedPerson; got 'Device:x'."),
        ("Patient:a,Patient:b", "names Patient twice."),
    ],
)  # fmt: skip
def test_a_bad_actor_group_setting_names_the_variable(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        FhirSettings.from_environ({"FHIR_ACTOR_GROUPS": value})
    assert str(refused.value).startswith("FHIR_ACTOR_GROUPS " + problem)


def test_an_appointment_becomes_the_services_input() -> None:
    body = appointment(
        {"identifier": {"system": "urn:staff", "value": "doctor-1"}, "type": "PractitionerRole",
         "display": "Joe Smith"},
        {"reference": "https://ehr.example/fhir/RelatedPerson/rp-9/_history/2", "display": "Al"},
        identifier=[{"system": "urn:ehr", "value": "A-1"}],
        extension=[{"url": EXPECTED, "valuePositiveInt": 3}],
        status="proposed",
    )  # fmt: skip
    wanted = appointment_input(parse_appointment(body), GROUPS)
    assert wanted.participants.number == 3
    assert wanted.participants.entries == (
        ParticipantEntry("doctor-1", ("doctor",), "Joe Smith", None, "Appointment.participant[0]"),
        ParticipantEntry("rp-9", ("patient",), "Al", None, "Appointment.participant[1]"),
    )
    assert wanted.schedule.start_date == START
    assert wanted.schedule.end_date == START + timedelta(hours=1)
    assert wanted.identifier == AppointmentId("urn:ehr", "A-1")
    assert not wanted.cancelled


def test_with_an_identity_provider_actors_give_ids_only() -> None:
    body = appointment({"reference": "Patient/p-1"}, DOCTOR_ACTOR)
    wanted = appointment_input(parse_appointment(body), None)
    assert [(e.external_id, e.groups, e.full_name) for e in wanted.participants.entries or ()] == [
        ("p-1", None, None),
        ("doctor-1", None, None),
    ]


def test_minutes_duration_alone_gives_the_end_and_type_only_entries_are_expected() -> None:
    body = appointment(DOCTOR_ACTOR, minutesDuration=45)
    del body["end"]
    body["participant"].append({"type": [{"text": "a patient"}], "status": "needs-action"})
    wanted = appointment_input(parse_appointment(body), GROUPS)
    assert wanted.schedule.duration_in_seconds == 45 * 60
    assert wanted.schedule.end_date is None
    assert (wanted.participants.number, len(wanted.participants.entries or ())) == (2, 1)


def test_a_time_without_its_zone_is_refused() -> None:
    body = appointment(DOCTOR_ACTOR, PATIENT_ACTOR, start="2030-02-22T15:30:00")
    with pytest.raises(InvalidRequest) as refused:
        appointment_input(parse_appointment(body), GROUPS)
    assert refused.value.message == (
        "The body is not a valid R4 Appointment: Appointment.start: Value error, Instant value "
        "string does not match spec regex."
    )


def test_a_models_problem_is_named_as_a_fhirpath() -> None:
    body = appointment(DOCTOR_ACTOR, PATIENT_ACTOR)
    del body["participant"][1]["status"]
    with pytest.raises(InvalidRequest) as refused:
        parse_appointment(body)
    assert refused.value.details == (
        {
            "path": "Appointment.participant[1].status",
            "message": "Value for the field 'status' is required",
        },
    )


def test_status_follows_the_teleconsultation() -> None:
    ready = replace(RECORD, room=ROOM)
    assert fhir_status(RECORD) == "booked"
    assert fhir_status(ready) == "booked"
    started = replace(ready, attendance=Attendance(call_started_at=START))
    assert fhir_status(started) == "arrived"
    assert fhir_status(replace(started, attendance=Attendance(START, START))) == "fulfilled"
    assert fhir_status(replace(ready, state=RecordState.TRASH, room=None)) == "cancelled"


def test_actor_types_read_back_from_groups() -> None:
    assert actor_type(("doctor",), GROUPS) == "Practitioner"
    assert actor_type(("x", "patient"), GROUPS) == "Patient"
    assert actor_type(("nurse",), GROUPS) is None


def test_only_the_callers_entry_carries_the_virtual_service() -> None:
    service = VirtualService("webrtc", "https://call.example/j/abc", 2)
    resource = appointment_of(
        RECORD, GROUPS, AppointmentId(None, "A-1"), caller_id="patient-1", service=service
    )
    assert "extension" not in resource["participant"][0]
    assert resource["participant"][1]["extension"] == [
        {
            "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService",
            "extension": [
                {"url": "channelType", "valueCoding": {"system": "urn:teleconsult:video-provider", "code": "webrtc"}},
                {"url": "addressUrl", "valueUrl": "https://call.example/j/abc"},
                {"url": "maxParticipants", "valuePositiveInt": 2},
            ],
        }
    ]  # fmt: skip
    assert resource["identifier"] == [{"value": "A-1"}]
    assert resource["meta"] == {"versionId": "3", "lastUpdated": "2030-02-22T15:30:00Z"}
    assert r4_problems(resource) == []


@pytest.mark.parametrize(
    ("resource", "problems"),
    [
        ({"resourceType": "Appointment", "status": "checked-out"},
         ["Appointment.status 'checked-out' is not an R4 code"]),
        ({"resourceType": "Appointment", "status": "booked", "virtualService": []},
         ["Appointment.virtualService is not an element served as R4"]),
        ({"resourceType": "Appointment", "status": "booked",
          "participant": [{"status": "accepted", "required": "maybe"}]},
         ["Appointment.participant.required 'maybe' is not an R4 code"]),
        ({"resourceType": "Bundle", "type": "searchset",
          "entry": [{"resource": {"resourceType": "Appointment", "status": "planned"}}]},
         ["Appointment.status 'planned' is not an R4 code"]),
        ({"resourceType": "Appointment", "status": "booked",
          "participant": [{"status": "accepted", "period": {}}]},
         ["Appointment.participant.period is not an element served as R4"]),
        ({"resourceType": "CapabilityStatement", "fhirVersion": "4.3.0"},
         ["CapabilityStatement.fhirVersion '4.3.0' is not an R4 code"]),
        ({"resourceType": "OperationOutcome", "issue": [{"severity": "bad", "code": "invalid"}]},
         ["OperationOutcome.issue.severity 'bad' is not an R4 code"]),
    ],
)  # fmt: skip
def test_the_r4_checks_catch_what_the_r4b_models_let_through(
    resource: dict[str, Any], problems: list[str]
) -> None:
    assert r4_problems(resource) == problems


def test_the_capability_statement_is_r4() -> None:
    statement = capability_statement("https://teleconsult.example/fhir/R4")
    parsed(statement)
    assert r4_problems(statement) == []


def test_search_parameters_become_the_listings_filters() -> None:
    query = MultiDict(
        [("actor", "Patient/p-1"), ("date", "gt2030-03-01T10:00:00Z"), ("date", "le2030-03-02"),
         ("status", "booked,arrived"), ("_count", "5")]
    )  # fmt: skip
    filters, statuses = search_filters(query)
    assert filters.participant == "p-1"
    assert filters.start_from == datetime(2030, 3, 1, 10, 0, 0, 1, tzinfo=UTC)
    assert filters.start_before == datetime(2030, 3, 2, 0, 0, 0, 1, tzinfo=UTC)
    assert (filters.limit, filters.phase) == (5, None)
    assert statuses == frozenset({"booked", "arrived"})
    filters, _ = search_filters(MultiDict([("status", "cancelled")]))
    assert filters.phase is Phase.CANCELLED
    with pytest.raises(InvalidRequest) as refused:
        search_filters(MultiDict([("_count", "500")]))
    assert refused.value.message == "_count must be a whole number from 1 to 100."
