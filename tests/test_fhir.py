"""The FHIR R4 interface driven by an independent FHIR client (fhirpy): create, read, search,
reschedule and cancel, every answer valid R4, and the same teleconsultations as the API's."""

from __future__ import annotations

import json

import pytest
from fhirpy.base.exceptions import OperationOutcome as OutcomeError
from fhirpy.base.exceptions import ResourceNotFound

from tests.fhir_helpers import (
    DOCTOR_ACTOR,
    MANAGER_CALLS,
    PATIENT_ACTOR,
    appointment,
    fhir_client,
    participant_entries,
    serialized,
    valid_r4,
)
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    create,
    teleconsultation,
)


async def manager_client(make_client: MakeClient, **environ: str) -> Client:
    return await make_client(MANAGER_GROUPS="secretaries", **environ)


async def test_the_capability_statement_is_r4_and_names_what_is_supported(
    make_client: MakeClient,
) -> None:
    client = await manager_client(make_client)
    response = await client.get("/fhir/R4/metadata")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    statement = valid_r4(await response.json())
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["implementation"]["url"] == str(client.make_url("/fhir/R4"))
    [rest] = statement["rest"]
    [resource] = rest["resource"]
    assert resource["type"] == "Appointment"
    assert [i["code"] for i in resource["interaction"]] == [
        "create", "read", "update", "patch", "delete", "search-type",
    ]  # fmt: skip
    assert resource["conditionalCreate"] is True
    assert [p["name"] for p in resource["searchParam"]] == [
        "actor", "date", "status", "identifier", "_count",
    ]  # fmt: skip
    assert (
        "urn:teleconsult:fhir:StructureDefinition:expected-participants"
        in (resource["documentation"])
    )


async def test_created_through_fhir_is_the_teleconsultation_the_api_sees(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await manager_client(make_client)
    fhir = fhir_client(client)
    created = fhir.resource(
        "Appointment",
        **appointment(
            DOCTOR_ACTOR, PATIENT_ACTOR, identifier=[{"system": "urn:ehr", "value": "A-1"}]
        ),
    )
    await created.save()
    resource = valid_r4(serialized(created))
    room_id = resource["id"]
    assert resource["status"] == "booked"
    assert resource["identifier"] == [{"system": "urn:ehr", "value": "A-1"}]
    assert participant_entries(resource) == [
        {"id": "doctor-1", "type": "Practitioner", "display": "Joe Smith", "link": None},
        {"id": "patient-1", "type": "Patient", "display": "Jane Doe", "link": None},
    ]

    listed = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    assert listed["items"] == [
        {
            "id": room_id,
            "start_date": "2030-02-22T15:30:00.000Z",
            "end_date": "2030-02-22T16:30:00.000Z",
            "createdAt": "2030-02-22T12:00:00.000Z",
            "updatedAt": "2030-02-22T12:00:00.000Z",
            "state": "room_ready",
            "participantsNumber": 2,
            "participants": [
                {"userExternalId": "doctor-1", "fullName": "Joe Smith"},
                {"userExternalId": "patient-1", "fullName": "Jane Doe"},
            ],
        }
    ]

    # Inside the window each participant reads their own link, the one the API hands out.
    clock.advance(hours=3.5)
    as_doctor = fhir_client(client, {"miauserid": "doctor-1"})
    read = valid_r4(serialized(await as_doctor.reference("Appointment", room_id).to_resource()))
    api = await (
        await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    ).json()
    assert participant_entries(read) == [
        {
            "id": "doctor-1",
            "type": "Practitioner",
            "display": "Joe Smith",
            "link": api["accessLinkURL"],
        },
        {"id": "patient-1", "type": "Patient", "display": "Jane Doe", "link": None},
    ]
    audit = await (
        await client.get(f"/teleconsultation/{room_id}/audit", headers=MANAGER_CALLS)
    ).json()
    assert [(e["action"], e["actor"], e.get("participant")) for e in audit["items"]] == [
        ("created", "secretary-1", None),
        ("link_handed_out", "doctor-1", "doctor-1"),
        ("link_handed_out", "doctor-1", "doctor-1"),
    ]
    # The manager who scheduled it reads it, without anyone's link.
    read = valid_r4(serialized(await fhir.reference("Appointment", room_id).to_resource()))
    assert [entry["link"] for entry in participant_entries(read)] == [None, None]


async def test_made_through_the_api_reads_as_an_appointment(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    room_id = await create(client, teleconsultation(3, DOCTOR, PATIENT), headers=MANAGER_CALLS)
    fhir = fhir_client(client, {"miauserid": "patient-1"})
    resource = valid_r4(serialized(await fhir.reference("Appointment", room_id).to_resource()))
    assert resource == {
        "resourceType": "Appointment",
        "id": room_id,
        "meta": {"versionId": "1", "lastUpdated": "2030-02-22T12:00:00Z"},
        "extension": [
            {
                "url": "urn:teleconsult:fhir:StructureDefinition:expected-participants",
                "valuePositiveInt": 3,
            }
        ],
        "status": "booked",
        "start": "2030-02-22T15:30:00Z",
        "end": "2030-02-22T16:30:00Z",
        "minutesDuration": 60,
        "participant": [
            {
                "actor": {
                    "type": "Practitioner",
                    "identifier": {"value": "doctor-1"},
                    "display": "Joe Smith",
                },
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {
                    "type": "Patient",
                    "identifier": {"value": "patient-1"},
                    "display": "Jane Doe",
                },
                "required": "required",
                "status": "accepted",
            },
            {
                "type": [{"text": "participant not known yet"}],
                "required": "required",
                "status": "needs-action",
            },
        ],
    }


async def test_search_pages_on_next_links_within_the_callers_permissions(
    make_client: MakeClient,
) -> None:
    client = await manager_client(make_client)
    fhir = fhir_client(client)
    ids = []
    for day in (3, 1, 2, 4):
        made = fhir.resource(
            "Appointment",
            **appointment(
                DOCTOR_ACTOR,
                PATIENT_ACTOR,
                start=f"2030-03-0{day}T10:00:00Z",
                end=f"2030-03-0{day}T11:00:00Z",
            ),
        )
        await made.save()
        ids.append((day, made.id))
    other = {**PATIENT, "userExternalId": "patient-2"}
    await create(client, teleconsultation(2, DOCTOR, other), headers=MANAGER_CALLS)
    by_start = [room for _, room in sorted(ids)]

    as_patient = fhir_client(client, {"miauserid": "patient-1"})
    query = (
        as_patient.resources("Appointment")
        .search(date__ge="2030-03-02", date__lt="2030-03-04T10:00:00Z")
        .limit(1)
    )
    found = await query.fetch_all()
    assert [r.id for r in found] == by_start[1:3]
    for resource in found:
        valid_r4(serialized(resource))

    # The raw Bundle: a searchset with self and next links, entries without links.
    response = await client.get(
        "/fhir/R4/Appointment?actor=Patient/patient-1&_count=3", headers={"miauserid": "patient-1"}
    )
    bundle = valid_r4(await response.json())
    assert response.headers["Cache-Control"] == "no-store"
    assert bundle["type"] == "searchset"
    assert [e["resource"]["id"] for e in bundle["entry"]] == by_start[:3]
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        str(client.make_url(f"/fhir/R4/Appointment/{r}")) for r in by_start[:3]
    ]
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    rest = await (
        await client.session.get(bundle["link"][1]["url"], headers={"miauserid": "patient-1"})
    ).json()
    assert [e["resource"]["id"] for e in valid_r4(rest)["entry"]] == by_start[3:]
    assert [link["relation"] for link in rest["link"]] == ["self"]

    # Another participant's search is a manager's alone.
    refused = await client.get(
        "/fhir/R4/Appointment?actor=Patient/patient-2", headers={"miauserid": "patient-1"}
    )
    assert refused.status == 403
    assert valid_r4(await refused.json())["issue"][0]["code"] == "forbidden"
    everyone = await fhir.resources("Appointment").search(actor="patient-2").fetch_all()
    assert len(everyone) == 1


async def test_reschedule_change_participants_and_cancel(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    fhir = fhir_client(client)
    made = fhir.resource(
        "Appointment",
        **appointment(
            DOCTOR_ACTOR,
            extension=[
                {
                    "url": "urn:teleconsult:fhir:StructureDefinition:expected-participants",
                    "valuePositiveInt": 2,
                }
            ],
        ),
    )
    await made.save()
    room_id = made.id
    api = await (
        await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    ).json()
    assert api["participantsBandyerCall"] == [
        {"bandyerUserId": api["bandyerUserId"], "fullName": "Joe Smith"}
    ]

    # PUT (fhirpy's save): a later start, and the patient now known.
    made["start"], made["minutesDuration"] = "2030-02-22T17:00:00Z", 30
    del made["end"]
    made["participant"] = [made["participant"][0], {"actor": PATIENT_ACTOR, "status": "accepted"}]
    await made.save()
    resource = valid_r4(serialized(made))
    assert (resource["start"], resource["minutesDuration"], resource["meta"]["versionId"]) == (
        "2030-02-22T17:00:00Z",
        30,
        "2",
    )
    listed = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    assert [(i["start_date"], i["end_date"], i["state"]) for i in listed["items"]] == [
        ("2030-02-22T17:00:00.000Z", "2030-02-22T17:30:00.000Z", "room_ready")
    ]

    # JSON Patch: a longer call.
    patch = [
        {"op": "replace", "path": "/end", "value": "2030-02-22T18:00:00Z"},
        {"op": "remove", "path": "/minutesDuration"},
    ]
    response = await client.patch(
        f"/fhir/R4/Appointment/{room_id}",
        data=json.dumps(patch),
        headers={**MANAGER_CALLS, "Content-Type": "application/json-patch+json"},
    )
    assert response.status == 200, await response.text()
    assert valid_r4(await response.json())["end"] == "2030-02-22T18:00:00Z"
    listed = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    assert listed["items"][0]["end_date"] == "2030-02-22T18:00:00.000Z"

    # Cancel: fhirpy's delete; it then reads as cancelled, and the API has it no more.
    await fhir.delete("Appointment", room_id)
    read = valid_r4(serialized(await fhir.reference("Appointment", room_id).to_resource()))
    assert read["status"] == "cancelled"
    assert (
        await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    ).status == 404
    with pytest.raises(ResourceNotFound):  # fhirpy's 404
        await fhir.delete("Appointment", room_id)


async def test_cancelled_by_status_in_a_put(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    fhir = fhir_client(client)
    made = fhir.resource("Appointment", **appointment(DOCTOR_ACTOR, PATIENT_ACTOR))
    await made.save()
    made["status"] = "cancelled"
    await made.save()
    assert valid_r4(serialized(made))["status"] == "cancelled"
    listed = await (await client.get("/teleconsultations", headers=MANAGER_CALLS)).json()
    assert [i["state"] for i in listed["items"]] == ["cancelled"]
    found = await fhir.resources("Appointment").search(status="cancelled").fetch_all()
    assert [r.id for r in found] == [made.id]
    assert await fhir.resources("Appointment").search(status="booked").fetch_all() == []


async def test_inside_the_window_a_change_is_a_409_outcome(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await manager_client(make_client)
    fhir = fhir_client(client)
    made = fhir.resource("Appointment", **appointment(DOCTOR_ACTOR, PATIENT_ACTOR))
    await made.save()
    clock.advance(hours=3.5)
    made["end"] = "2030-02-22T17:00:00Z"
    del made["minutesDuration"]
    with pytest.raises(OutcomeError) as refused:
        await made.save()
    issue = valid_r4(refused.value.resource)["issue"][0]
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("conflict", "locked")
    assert issue["diagnostics"].startswith(
        "The teleconsultation is locked since 2030-02-22T15:30:00.000Z"
    )


async def test_nothing_logged_names_a_patient_or_holds_a_link(
    make_client: MakeClient, clock: FrozenClock, log_lines: LogLines
) -> None:
    client = await manager_client(make_client, LOG_LEVEL="trace")
    made = fhir_client(client).resource("Appointment", **appointment(DOCTOR_ACTOR, PATIENT_ACTOR))
    await made.save()
    await fhir_client(client).resources("Appointment").search(actor="patient-1").fetch_all()
    clock.advance(hours=3.5)
    as_patient = fhir_client(client, {"miauserid": "patient-1"})
    read = serialized(await as_patient.reference("Appointment", made.id).to_resource())
    link = participant_entries(read)[1]["link"]
    assert link is not None
    text = log_lines.text
    assert made.id in text  # the requests were logged
    for secret in ("Joe Smith", "Jane Doe", link, link.rsplit("/", 1)[-1]):
        assert secret not in text
