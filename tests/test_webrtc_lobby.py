"""The lobby (CALL_PAGE_LOBBY): a participant below plus waits until a plus participant
admits or declines them, and the server enforces it: a waiting page is told of no one and
nothing it sends is relayed; the decision reaches it through the store, on any replica;
knocks and decisions are webhooks, and decisions are audited."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientWebSocketResponse

from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    LOBBY,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    closing,
    open_call,
    path_of,
    relay,
    webrtc_call,
)
from tests.test_webhooks import SECRET as WEBHOOK_SECRET
from tests.test_webhooks import Receiver, deliver_all, start_receiver


async def knock(client: Client, link: str) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    """A page's WebSocket that joined and was told to wait."""
    ws = await client.ws_connect(path_of(link) + "/ws")
    await ws.send_json({"type": "join"})
    waiting = await ws.receive_json(timeout=5)
    assert waiting["type"] == "waiting", waiting
    return ws, waiting


async def next_of(ws: ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    message: dict[str, Any] = await ws.receive_json(timeout=5)
    assert message["type"] == kind, message
    return message


async def test_the_patient_waits_unseen_until_the_doctor_admits_them(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**LOBBY)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, joined = await open_call(client, links["doctor-1"])  # plus never waits
    assert joined["waiting"] == []
    patient, waiting = await knock(client, links["patient-1"])
    assert waiting["self"]["name"] == "Jane Doe"
    knocked = await next_of(doctor, "knock")
    assert knocked["peer"]["id"] == waiting["self"]["id"]
    assert knocked["peer"]["name"] == "Jane Doe"
    assert knocked["peer"]["since"].endswith("Z")
    room = await _room(client)
    assert len(room["waiting"]) == 1
    assert len(room["connected"]) == 1

    # Nothing the waiting page sends reaches anyone: it is closed instead.
    await patient.send_json({"type": "offer", "to": joined["self"]["id"], "sdp": "v=0"})
    _, code, reason = await closing(patient)
    assert (code, reason) == (1008, "waiting to be admitted")
    await next_of(doctor, "knock-withdrawn")

    patient, waiting = await knock(client, links["patient-1"])
    knocked = await next_of(doctor, "knock")
    await doctor.send_json({"type": "admit", "peer": knocked["peer"]["id"]})
    admitted = await next_of(patient, "joined")
    assert [p["name"] for p in admitted["peers"]] == ["Joe Smith"]
    await next_of(doctor, "knock-withdrawn")
    await next_of(doctor, "peer-joined")
    me, other = admitted["self"]["id"], joined["self"]["id"]
    await relay(patient, me, doctor, other, "offer", "v=0 patient")

    # Dropped and back within the call: not asked again.
    await patient.close()
    await next_of(doctor, "peer-left")
    patient, again = await open_call(client, links["patient-1"])
    assert [p["name"] for p in again["peers"]] == ["Joe Smith"]
    for ws in (doctor, patient):
        await ws.close()


async def test_a_declined_patient_is_told_and_may_knock_again(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**LOBBY)
    room_id, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    patient, waiting = await knock(client, links["patient-1"])  # before the doctor is there
    doctor, joined = await open_call(client, links["doctor-1"])
    [knocked] = joined["waiting"]
    assert (knocked["id"], knocked["name"]) == (waiting["self"]["id"], "Jane Doe")

    await doctor.send_json({"type": "decline", "peer": knocked["id"]})
    seen, code, reason = await closing(patient)
    assert seen == [{"type": "declined"}]
    assert (code, reason) == (4003, "declined")
    await next_of(doctor, "knock-withdrawn")
    entries = (await client.app[SERVICES].audit.page(room_id, None, 10)).entries
    declined = [e for e in entries if e.action == "participant_declined"]
    assert [(e.actor, e.participant) for e in declined] == [("doctor-1", "patient-1")]
    patient, _ = await knock(client, links["patient-1"])
    await next_of(doctor, "knock")
    for ws in (doctor, patient):
        await ws.close()


async def test_only_the_plus_participant_decides(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**LOBBY)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    patient, waiting = await knock(client, links["patient-1"])
    await patient.send_json({"type": "admit", "peer": waiting["self"]["id"]})
    _, code, _ = await closing(patient)
    assert code == 1008


async def test_knocks_and_decisions_are_webhooks(
    make_client: MakeClient, clock: FrozenClock, aiohttp_server: Server
) -> None:
    receiver = await start_receiver(aiohttp_server, Receiver())
    client = await make_client(**LOBBY, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=WEBHOOK_SECRET)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, _ = await open_call(client, links["doctor-1"])
    patient, waiting = await knock(client, links["patient-1"])
    await next_of(doctor, "knock")
    await doctor.send_json({"type": "admit", "peer": waiting["self"]["id"]})
    await next_of(patient, "joined")
    await deliver_all(client)

    events = [r.payload for r in receiver.received]
    kinds = [e["type"] for e in events if e["type"].startswith(("participant.", "call."))]
    assert kinds == [
        "participant.joined",
        "participant.waiting",
        "participant.admitted",
        "participant.joined",
        "call.started",
    ]
    [admitted] = [e for e in events if e["type"] == "participant.admitted"]
    assert admitted["data"]["participant"]["userExternalId"] == "patient-1"
    assert admitted["data"]["by"]["userExternalId"] == "doctor-1"
    for ws in (doctor, patient):
        await ws.close()


async def test_without_the_lobby_everyone_goes_straight_in(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**{**LOBBY, "CALL_PAGE_LOBBY": "false"})
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    patient, joined = await open_call(client, links["patient-1"])
    assert joined["peers"] == []
    assert "waiting" not in joined
    info = await (await client.get(path_of(links["patient-1"]) + "/info")).json()
    assert "lobby" not in info
    await patient.close()


async def _room(client: Client) -> dict[str, Any]:
    [room] = await client.app[SERVICES].video.rooms.ids()  # type: ignore[attr-defined]
    details: dict[str, Any] = await client.app[SERVICES].video.describe_room(room)  # type: ignore[attr-defined]
    return details
