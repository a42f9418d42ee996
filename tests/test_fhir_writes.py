"""FHIR writes over HTTP: conditional creates that make nothing twice (across replicas too),
and every refusal as an OperationOutcome with the status the API gives."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.fhir_helpers import (
    DOCTOR_ACTOR,
    EXPECTED,
    FHIR_JSON,
    MANAGER_CALLS,
    PATIENT_ACTOR,
    appointment,
    outcome,
    valid_r4,
)
from tests.helpers import DOCTOR, PATIENT, Client, MakeClient, create, teleconsultation

WRITE = {**MANAGER_CALLS, **FHIR_JSON}
EHR_ID = {"system": "urn:ehr", "value": "A-7"}


async def manager_client(make_client: MakeClient) -> Client:
    return await make_client(MANAGER_GROUPS="secretaries")


async def post(
    client: Client, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/fhir/R4/Appointment", data=json.dumps(body), headers={**WRITE, **(headers or {})}
    )
    assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    return response.status, valid_r4(await response.json())


async def listed_ids(client: Client) -> list[str]:
    body = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    return [item["id"] for item in body["items"]]


async def test_a_conditional_create_retried_creates_nothing_twice(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    condition = {"If-None-Exist": "identifier=urn:ehr|A-7"}
    body = appointment(DOCTOR_ACTOR, PATIENT_ACTOR, identifier=[EHR_ID])
    status, created = await post(client, body, condition)
    assert status == 201
    status, again = await post(client, body, condition)
    assert (status, again) == (200, created)
    assert await listed_ids(client) == [created["id"]]
    # Without the condition, the identifier taken is a conflict, not a second teleconsultation.
    status, refused = await post(client, body)
    assert (status, refused) == (
        409,
        outcome(
            409,
            "conflict",
            "contention",
            f"Appointment/{created['id']} already has this Appointment.identifier; send "
            "If-None-Exist: identifier=system|value to get it back instead of an error.",
        ),
    )
    # The identifier is searchable, with or without its system.
    for token in ("urn:ehr|A-7", "A-7"):
        response = await client.get(
            f"/fhir/R4/Appointment?identifier={token}", headers=MANAGER_CALLS
        )
        bundle = valid_r4(await response.json())
        assert [entry["resource"]["id"] for entry in bundle["entry"]] == [created["id"]]
    response = await client.get("/fhir/R4/Appointment?identifier=other|A-7", headers=MANAGER_CALLS)
    assert "entry" not in valid_r4(await response.json())


async def test_concurrent_conditional_creates_on_two_replicas_make_one(
    make_client: MakeClient,
) -> None:
    replicas = [await manager_client(make_client) for _ in range(2)]
    condition = {"If-None-Exist": "identifier=urn:ehr|A-7"}
    body = appointment(DOCTOR_ACTOR, PATIENT_ACTOR, identifier=[EHR_ID])
    answers = await asyncio.gather(
        *(post(replica, body, condition) for replica in replicas for _ in range(3))
    )
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 200, 201]
    assert len({resource["id"] for _, resource in answers}) == 1
    assert await listed_ids(replicas[0]) == [answers[0][1]["id"]]


async def test_a_failed_create_frees_its_identifier(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    nobody_plus = appointment(
        PATIENT_ACTOR, {**PATIENT_ACTOR, "reference": "Patient/p-2"}, identifier=[EHR_ID]
    )
    status, refused = await post(client, nobody_plus, {"If-None-Exist": "identifier=urn:ehr|A-7"})
    assert (status, refused["issue"][0]["details"]["coding"][0]["code"]) == (400, "no_plus_user")
    status, created = await post(
        client, appointment(DOCTOR_ACTOR, PATIENT_ACTOR, identifier=[EHR_ID])
    )
    assert status == 201
    assert created["identifier"] == [EHR_ID]


async def test_a_participant_added_later_completes_the_room(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    extension = [{"url": EXPECTED, "valuePositiveInt": 2}]
    status, created = await post(client, appointment(DOCTOR_ACTOR, extension=extension))
    assert status == 201
    assert created["participant"][1] == {
        "type": [{"text": "participant not known yet"}],
        "required": "required",
        "status": "needs-action",
    }
    listed = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    assert listed["items"][0]["state"] == "waiting_for_participants"
    patch = [
        {
            "op": "replace",
            "path": "/participant/1",
            "value": {"actor": PATIENT_ACTOR, "status": "accepted"},
        }
    ]
    response = await client.patch(
        f"/fhir/R4/Appointment/{created['id']}",
        data=json.dumps(patch),
        headers={**MANAGER_CALLS, "Content-Type": "application/json-patch+json"},
    )
    assert response.status == 200, await response.text()
    listed = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    assert listed["items"][0]["state"] == "room_ready"


def refusal(
    message: str, *paths: str, status: int = 400, code: str = "invalid", api: str = "validation"
) -> tuple[int, dict[str, Any]]:
    return status, outcome(status, code, api, message, *paths)


BAD_APPOINTMENTS: list[tuple[dict[str, Any], tuple[int, dict[str, Any]]]] = [
    (
        appointment(DOCTOR_ACTOR, {"reference": "Patient/patient-1"}),
        refusal(
            "Appointment.participant[1].actor.display is required with the static identity "
            "provider: the participant's name, shown in the call.",
            "Appointment.participant[1].actor.display",
        ),
    ),
    (
        appointment(DOCTOR_ACTOR, {"identifier": {"value": "x"}, "display": "X"}),
        refusal(
            "Appointment.participant[1].actor must be a Practitioner, PractitionerRole, Patient, "
            "RelatedPerson (its reference 'Type/id' or its type): the type gives the "
            "participant's group (FHIR_ACTOR_GROUPS); got None.",
            "Appointment.participant[1].actor.type",
        ),
    ),
    (
        appointment(DOCTOR_ACTOR, {"reference": "Device/d-1", "display": "Camera"}),
        refusal(
            "Appointment.participant[1].actor must be a Practitioner, PractitionerRole, Patient, "
            "RelatedPerson (its reference 'Type/id' or its type): the type gives the "
            "participant's group (FHIR_ACTOR_GROUPS); got 'Device'.",
            "Appointment.participant[1].actor.type",
        ),
    ),
    (
        {
            **appointment(DOCTOR_ACTOR, PATIENT_ACTOR),
            "participant": [
                {"actor": DOCTOR_ACTOR, "status": "accepted"},
                {"actor": PATIENT_ACTOR, "status": "accepted", "required": "optional"},
            ],
        },
        refusal(
            "Appointment.participant[1].required 'optional' is not supported: every participant "
            "of a teleconsultation is required (leave it out, or send 'required').",
            "Appointment.participant[1].required",
        ),
    ),
    (
        appointment(DOCTOR_ACTOR, PATIENT_ACTOR, status="arrived"),
        refusal(
            "Appointment.status 'arrived' cannot be set here; use one of booked, proposed.",
            "Appointment.status",
        ),
    ),
    (
        appointment(DOCTOR_ACTOR, PATIENT_ACTOR, minutesDuration=45),
        refusal(
            "Appointment.minutesDuration 45 does not match start and end (60 minutes apart); "
            "send one or make them agree.",
            "Appointment.minutesDuration",
        ),
    ),
    (
        appointment(DOCTOR_ACTOR, PATIENT_ACTOR, end="2030-02-22T15:00:00Z"),
        refusal(
            "end_date must be after start_date.",
            "Appointment.end",
        ),
    ),
    (
        appointment(
            DOCTOR_ACTOR, PATIENT_ACTOR, extension=[{"url": EXPECTED, "valuePositiveInt": 1}]
        ),
        refusal(
            f"The extension {EXPECTED} must appear once, with a valuePositiveInt of at least "
            "the 2 participants named.",
            "Appointment.extension",
        ),
    ),
    (
        appointment(DOCTOR_ACTOR, PATIENT_ACTOR, identifier=[EHR_ID, {"value": "B"}]),
        refusal(
            "This service keeps one Appointment.identifier (the EHR's own id); 2 were given.",
            "Appointment.identifier",
        ),
    ),
    (
        {"resourceType": "Patient"},
        refusal(
            'The body must be an Appointment resource ("resourceType": "Appointment").',
            "Appointment",
        ),
    ),
    (
        {"resourceType": "Appointment", "status": "booked"},
        refusal(
            "The body is not a valid R4 Appointment: Appointment.participant: Field required.",
            "Appointment.participant",
        ),
    ),
]


@pytest.mark.parametrize(("body", "expected"), BAD_APPOINTMENTS)
async def test_a_bad_appointment_is_a_400_outcome_that_says_what_to_change(
    make_client: MakeClient, body: dict[str, Any], expected: tuple[int, dict[str, Any]]
) -> None:
    client = await manager_client(make_client)
    assert await post(client, body) == expected
    assert await listed_ids(client) == []


async def test_refusals_of_the_http_kind(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT), headers=MANAGER_CALLS)

    async def answer(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = await client.request(method, f"/fhir/R4{path}", **kwargs)
        return response.status, valid_r4(await response.json())

    as_form = {**MANAGER_CALLS, "Content-Type": "application/x-www-form-urlencoded"}
    assert await answer("POST", "/Appointment", data="a=b", headers=as_form) == refusal(
        "The body must be sent with Content-Type application/fhir+json or application/json, "
        "not application/x-www-form-urlencoded.",
        status=415,
        code="not-supported",
        api="unsupported_media_type",
    )
    assert await answer("POST", "/Appointment", data="{", headers=WRITE) == refusal(
        "The body is not valid JSON: Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1).",
        api="malformed_body",
    )
    assert await answer(
        "GET", f"/Appointment/{room_id}", headers={"miauserid": "someone"}
    ) == refusal(
        "The caller is not a participant of this teleconsultation.",
        status=401,
        code="login",
        api="unauthorized",
    )
    assert await answer(
        "GET", "/Appointment/0123456789abcdef01234567", headers=MANAGER_CALLS
    ) == refusal(
        "No Appointment has the id '0123456789abcdef01234567': it never existed or was deleted.",
        status=404,
        code="not-found",
        api="not_found",
    )
    assert await answer("POST", f"/Appointment/{room_id}", headers=MANAGER_CALLS) == refusal(
        f"POST is not allowed on /fhir/R4/Appointment/{room_id}; use GET, PUT, PATCH, DELETE.",
        status=405,
        code="not-supported",
        api="method_not_allowed",
    )
    assert await answer("GET", "/Patient", headers=MANAGER_CALLS) == refusal(
        "There is no route GET /fhir/R4/Patient: this FHIR interface serves /fhir/R4/metadata "
        "and /fhir/R4/Appointment only.",
        status=404,
        code="not-found",
        api="no_route",
    )
    assert await answer(
        "DELETE", f"/Appointment/{room_id}", headers={"miauserid": "patient-1"}
    ) == refusal(
        "Only members of the manager groups (secretaries) may create, change or cancel "
        "teleconsultations.",
        status=403,
        code="forbidden",
        api="forbidden",
    )
    assert await answer("GET", "/Appointment?name=x", headers=MANAGER_CALLS) == refusal(
        "Unsupported search parameter 'name'; this service searches Appointments by _count, "
        "actor, date, identifier, status.",
        "name",
    )
    assert await answer("GET", "/Appointment?date=2030-03-01", headers=MANAGER_CALLS) == refusal(
        "date '2030-03-01' needs a prefix ge, gt, lt or le (date=ge2030-03-01&date=lt2030-03-02 "
        "for one day).",
        "date",
    )
    assert await answer("GET", "/Appointment?status=noshow", headers=MANAGER_CALLS) == refusal(
        "status 'noshow' is not one an Appointment here has; use arrived, booked, cancelled, "
        "fulfilled.",
        "status",
    )
    patch = {**MANAGER_CALLS, "Content-Type": "application/json-patch+json"}
    bad_patch = json.dumps([{"op": "replace", "path": "/nothing/there", "value": 1}])
    status, body = await answer("PATCH", f"/Appointment/{room_id}", data=bad_patch, headers=patch)
    assert (status, body["issue"][0]["diagnostics"].split(":")[0]) == (
        400,
        f"The JSON Patch cannot be applied to Appointment/{room_id}",
    )
    for not_a_patch in ('"x"', "{}"):
        assert await answer(
            "PATCH", f"/Appointment/{room_id}", data=not_a_patch, headers=patch
        ) == refusal("The body must be a JSON Patch (RFC 6902): an array of operations.")
    condition = {**WRITE, "If-None-Exist": "identifier=urn:ehr|other"}
    body_with_id = json.dumps(appointment(DOCTOR_ACTOR, PATIENT_ACTOR, identifier=[EHR_ID]))
    assert await answer("POST", "/Appointment", data=body_with_id, headers=condition) == refusal(
        "If-None-Exist must name the body's own Appointment.identifier (identifier=system|value): "
        "that is what is kept and matched.",
        "If-None-Exist",
    )


async def test_links_use_the_configured_base_behind_a_gateway(make_client: MakeClient) -> None:
    base = "https://api.example.org/fhir/R4"
    client = await make_client(MANAGER_GROUPS="secretaries", FHIR_BASE_URL=base + "/")
    response = await client.post(
        "/fhir/R4/Appointment",
        data=json.dumps(appointment(DOCTOR_ACTOR, PATIENT_ACTOR)),
        headers={**WRITE, "Host": "attacker.example"},
    )
    created = valid_r4(await response.json())
    assert response.headers["Location"] == f"{base}/Appointment/{created['id']}"
    response = await client.get("/fhir/R4/Appointment?_count=1", headers=MANAGER_CALLS)
    bundle = valid_r4(await response.json())
    assert bundle["entry"][0]["fullUrl"] == f"{base}/Appointment/{created['id']}"
    assert bundle["link"] == [{"relation": "self", "url": f"{base}/Appointment?_count=1"}]
    statement = await (await client.get("/fhir/R4/metadata")).json()
    assert statement["implementation"]["url"] == base
