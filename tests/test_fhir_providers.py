"""The FHIR interface on the providers' side: the status follows the video provider's events,
a FHIR write goes out as the API's webhook events, and with an identity provider that knows
the users (auth0) actors give ids only."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.fake_auth0 import FakeAuth0Client
from tests.fakes.kaleyra import FakeKaleyra
from tests.fhir_helpers import (
    DOCTOR_ACTOR,
    FHIR_JSON,
    MANAGER_CALLS,
    PATIENT_ACTOR,
    appointment,
    fhir_client,
    participant_entries,
    serialized,
    valid_r4,
)
from tests.helpers import (
    STARTED,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    bandyer_env,
    provider_room,
)
from tests.test_provider_events import CONFIG, KALEYRA_EVENTS
from tests.test_webhooks import SECRET, Receiver, deliver_all, start_receiver


async def read_status(client: Client, room_id: str) -> str:
    resource = await fhir_client(client).reference("Appointment", room_id).to_resource()
    status: str = valid_r4(serialized(resource))["status"]
    return status


async def kaleyra_event(
    client: Client, kaleyra: FakeKaleyra, event: str, at: datetime, room_id: str
) -> None:
    data = {"room_id": await provider_room(client, room_id)}
    headers, body = kaleyra.signed_event(event, data, at, None)
    response = await client.post(KALEYRA_EVENTS, data=body, headers=headers)
    assert response.status == 200, await response.text()


async def test_the_status_follows_the_call_and_writes_go_out_as_webhooks(
    make_client: MakeClient,
    kaleyra_url: str,
    kaleyra: FakeKaleyra,
    aiohttp_server: Server,
    clock: FrozenClock,
) -> None:
    receiver = await start_receiver(aiohttp_server, Receiver())
    env = bandyer_env(kaleyra_url, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET)
    client = await make_client(CONFIG, MANAGER_GROUPS="secretaries", **env)
    made = fhir_client(client).resource("Appointment", **appointment(DOCTOR_ACTOR, PATIENT_ACTOR))
    await made.save()
    room_id = made.id
    await deliver_all(client)
    assert receiver.types[0] == "teleconsultation.created"
    assert await read_status(client, room_id) == "booked"

    # Inside the window the doctor's own entry carries the link, naming the provider.
    clock.now = STARTED
    as_doctor = fhir_client(client, {"miauserid": "doctor-1"})
    read = valid_r4(serialized(await as_doctor.reference("Appointment", room_id).to_resource()))
    [service] = read["participant"][0]["extension"]
    assert service["extension"][0]["valueCoding"]["code"] == "bandyer"
    assert [entry["link"] is None for entry in participant_entries(read)] == [False, True]

    await kaleyra_event(client, kaleyra, "on_call_started", STARTED + timedelta(seconds=5), room_id)
    assert await read_status(client, room_id) == "arrived"
    clock.now = STARTED + timedelta(minutes=30)
    await kaleyra_event(client, kaleyra, "on_call_ended", STARTED + timedelta(minutes=30), room_id)
    assert await read_status(client, room_id) == "fulfilled"


async def test_with_auth0_actors_give_ids_and_the_identity_provider_the_rest(
    make_client: MakeClient, aiohttp_server: Server
) -> None:
    users = {
        "doctor-1": {"name": "Joe Smith", "groups": ["doctor"]},
        "patient-1": {"name": "Jane Doe", "groups": ["patient"]},
    }
    server = await aiohttp_server(FakeAuth0Client(users=users).app())
    client = await make_client(
        AUTH_SERVICE=str(server.make_url("")).rstrip("/"), MANAGER_GROUPS="secretaries"
    )
    # No display, and a doctor sent as a Patient: the names and groups are Auth0's.
    body = appointment({"reference": "Patient/doctor-1"}, {"identifier": {"value": "patient-1"}})
    response = await client.post(
        "/fhir/R4/Appointment", data=json.dumps(body), headers={**MANAGER_CALLS, **FHIR_JSON}
    )
    assert response.status == 201, await response.text()
    created = valid_r4(await response.json())
    assert participant_entries(created) == [
        {"id": "doctor-1", "type": "Practitioner", "display": "Joe Smith", "link": None},
        {"id": "patient-1", "type": "Patient", "display": "Jane Doe", "link": None},
    ]
