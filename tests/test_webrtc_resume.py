"""A page whose signaling WebSocket dropped (its replica stopped) comes back, to any replica,
and takes its seat back as the same page: same peer id, nothing told to the others, what
was sent to it meanwhile delivered. Spoken over WebSockets, as the page speaks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientWebSocketResponse
from teleconsult_webrtc.resume import Resumed, reseat
from teleconsult_webrtc.state import Peer, Presence, Refused, RoomState, millis

from tests.helpers import (
    DOCTOR,
    LOBBY,
    NURSE,
    PATIENT,
    WEBRTC,
    Client,
    FrozenClock,
    MakeClient,
    closing,
    introduced,
    join,
    open_call,
    path_of,
    webrtc_call,
)
from tests.test_webrtc import provider, room_of
from tests.test_webrtc_lobby import knock

STOPPED: tuple[list[Any], int, str] = ([], 1001, "server shutting down; reconnect")
JOE = {"name": "Joe Smith", "isAdmin": True}
JANE = {"name": "Jane Doe", "isAdmin": False}


@dataclass
class Stopped:
    """A call whose doctor's replica (`first`) stopped; the patient's (`second`) runs on."""

    first: Client
    second: Client
    room_id: str
    links: dict[str, str]
    patient: ClientWebSocketResponse
    doctor_id: str
    patient_id: str


async def doctors_replica_stopped(
    make_client: MakeClient, clock: FrozenClock, *people: dict[str, Any]
) -> Stopped:
    """The doctor on one replica, the patient on another (one store), introduced; then the
    doctor's replica closes its connections as it does when it stops."""
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, *(people or (DOCTOR, PATIENT)))
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(second, links["patient-1"])
    assert (await doctor.receive_json(timeout=5))["type"] == "peer-joined"

    await provider(first).close_connections()

    assert await closing(doctor) == STOPPED
    doctor_id, patient_id = joined_doctor["self"]["id"], joined_patient["self"]["id"]
    return Stopped(first, second, room_id, links, patient, doctor_id, patient_id)


async def resume(
    client: Client, link: str, peer_id: object
) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    """A page's WebSocket that joins with `resume`: the socket and its first message."""
    ws = await client.ws_connect(path_of(link) + "/ws")
    await ws.send_json({"type": "join", "resume": peer_id})
    return ws, await ws.receive_json(timeout=5)


async def test_a_page_takes_its_seat_back_and_its_peer_is_told_nothing(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await doctors_replica_stopped(make_client, clock)
    # Meanwhile the patient's page restarts ICE: its offer waits in the doctor's mailbox.
    await call.patient.send_json({"type": "offer", "to": call.doctor_id, "sdp": "v=0 restart"})

    doctor, resumed = await resume(call.second, call.links["doctor-1"], call.doctor_id)

    assert resumed == {
        "type": "resumed",
        "self": {"id": call.doctor_id, **JOE},
        "peers": [{"id": call.patient_id, **JANE}],
    }
    assert await doctor.receive_json(timeout=5) == {
        "type": "offer",
        "from": call.patient_id,
        "sdp": "v=0 restart",
    }
    await doctor.send_json({"type": "answer", "to": call.patient_id, "sdp": "v=0 answer"})
    assert await call.patient.receive_json(timeout=5) == {  # no peer-left, no peer-joined
        "type": "answer",
        "from": call.doctor_id,
        "sdp": "v=0 answer",
    }
    status, body = await join(call.second, call.room_id, "doctor-1")
    assert status == 200
    details = body["details"]
    assert [who["userId"] for who in details["connected"]] == ["doctor-1", "patient-1"]
    assert details["status"] == "in_progress"
    await doctor.close()
    await call.patient.close()


async def test_a_page_replaced_while_it_was_away_stays_closed(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await doctors_replica_stopped(make_client, clock)
    newer, joined = await open_call(call.second, call.links["doctor-1"])  # another tab

    older = await call.second.ws_connect(path_of(call.links["doctor-1"]) + "/ws")
    await older.send_json({"type": "join", "resume": call.doctor_id})

    assert await closing(older) == ([], 4002, "replaced by a newer connection")
    assert await call.patient.receive_json(timeout=5) == {"type": "peer-left", "id": call.doctor_id}
    assert await call.patient.receive_json(timeout=5) == {
        "type": "peer-joined",
        "peer": joined["self"],
    }
    await newer.close()
    await call.patient.close()


async def test_a_page_whose_seat_expired_joins_afresh_under_a_new_id(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await doctors_replica_stopped(make_client, clock)
    room = await room_of(call.second, call.room_id)
    await provider(call.second).rooms.leave(room, call.doctor_id)  # as when its presence expires
    assert await call.patient.receive_json(timeout=5) == {"type": "peer-left", "id": call.doctor_id}

    doctor, joined = await resume(call.second, call.links["doctor-1"], call.doctor_id)

    assert joined["type"] == "joined", joined
    assert joined["self"]["id"] != call.doctor_id
    assert joined["peers"] == [{"id": call.patient_id, **JANE}]  # it offers again, as a newcomer
    await doctor.close()
    await call.patient.close()


async def test_a_page_cannot_resume_another_participants_seat(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await doctors_replica_stopped(make_client, clock, DOCTOR, PATIENT, NURSE)

    nurse, joined = await resume(call.second, call.links["nurse-1"], call.doctor_id)

    assert joined["type"] == "joined"  # a seat of its own, beside the doctor's kept one
    assert joined["self"]["id"] not in (call.doctor_id, call.patient_id)
    assert [peer["id"] for peer in joined["peers"]] == [call.doctor_id, call.patient_id]
    doctor, resumed = await resume(call.first, call.links["doctor-1"], call.doctor_id)
    assert resumed["type"] == "resumed"
    assert resumed["self"]["id"] == call.doctor_id
    for ws in (nurse, doctor, call.patient):
        await ws.close()


def a_room(**peers: str) -> RoomState:
    """A room of doctor-1 (admin) and patient-1 whose `peers` (peer id -> user) are seated."""
    state = RoomState({"doctor-1": True, "patient-1": False}, 600, False, "none", "then")
    for peer, user in peers.items():
        state.peers[peer] = Presence(user, "then", 0)
    return state


def test_the_rule_for_a_resume() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    state = a_room(a="doctor-1", b="patient-1")
    assert reseat(state, Peer("a", "doctor-1"), now) == Resumed((Peer("b", "patient-1"),), False)
    assert state.peers["a"].seen == millis(now)  # its heartbeat, refreshed
    assert reseat(a_room(a="doctor-1"), Peer("a", "patient-1"), now) is None  # not theirs
    assert reseat(a_room(b="doctor-1"), Peer("a", "doctor-1"), now) == "replaced"
    assert reseat(a_room(), Peer("a", "doctor-1"), now) is None  # expired: join afresh
    assert reseat(a_room(a="nurse-1"), Peer("a", "nurse-1"), now) == Refused("not_invited")
    ended = a_room(a="doctor-1")
    ended.ended_at, ended.end_reason = "then", "ended_by_host"
    assert reseat(ended, Peer("a", "doctor-1"), now) == Refused("ended", "ended_by_host")
    lobby = a_room()
    lobby.waiting["w"] = Presence("patient-1", "then", 0)
    assert reseat(lobby, Peer("w", "patient-1"), now) == Resumed((), waiting=True)


async def test_a_resume_that_is_not_a_peer_id_closes_the_connection(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    for wrong, reason in (
        (5, "missing or invalid field 'resume'"),
        ("x" * 65, "field 'resume' too long"),
    ):
        ws = await client.ws_connect(path_of(links["doctor-1"]) + "/ws")
        await ws.send_json({"type": "join", "resume": wrong})
        assert await closing(ws) == ([], 1008, reason)


async def test_a_waiting_page_resumes_waiting_and_one_admitted_meanwhile_comes_in(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """With the lobby: the patient's replica stops while they wait; they resume waiting (the
    doctor hears of no withdrawal), and, admitted while away, resume seated."""
    first = await make_client(**LOBBY)
    second = await make_client(**LOBBY)
    _, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    doctor, joined = await open_call(second, links["doctor-1"])
    patient, waiting = await knock(first, links["patient-1"])
    patient_id, doctor_id = waiting["self"]["id"], joined["self"]["id"]
    assert (await doctor.receive_json(timeout=5))["type"] == "knock"

    await provider(first).close_connections()

    assert await closing(patient) == STOPPED
    again, resumed = await resume(second, links["patient-1"], patient_id)
    assert resumed == {"type": "waiting", "self": {"id": patient_id, **JANE}}
    await provider(second).close_connections()  # the patient's replica stops again
    assert await closing(again) == STOPPED
    assert await closing(doctor) == STOPPED
    doctor, _ = await resume(first, links["doctor-1"], doctor_id)
    await doctor.send_json({"type": "admit", "peer": patient_id})  # while the patient is away
    assert (await doctor.receive_json(timeout=5))["type"] == "knock-withdrawn"
    assert await doctor.receive_json(timeout=5) == {
        "type": "peer-joined",
        "peer": {"id": patient_id, **JANE},
    }

    third = await make_client(**LOBBY)
    patient, resumed = await resume(third, links["patient-1"], patient_id)

    assert resumed == {
        "type": "resumed",
        "self": {"id": patient_id, **JANE},
        "peers": [{"id": doctor_id, **JOE}],
        "waiting": [],  # with the lobby, as in `joined`
    }
    await patient.send_json({"type": "offer", "to": doctor_id, "sdp": "v=0 newcomer"})
    assert await doctor.receive_json(timeout=5) == {  # the page offers: it is the newcomer
        "type": "offer",
        "from": patient_id,
        "sdp": "v=0 newcomer",
    }
    await patient.close()
    await doctor.close()


async def test_a_resume_closes_the_pages_old_connection_on_the_replica_without_a_leave(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """The page saw its socket break, the replica did not yet (a half-open connection): the
    resume closes the old one, which keeps the seat, so its peer hears nothing."""
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    old, joined_doctor = await open_call(client, links["doctor-1"])
    patient, joined_patient = await open_call(client, links["patient-1"])
    assert (await old.receive_json(timeout=5))["type"] == "peer-joined"
    doctor_id, patient_id = joined_doctor["self"]["id"], joined_patient["self"]["id"]

    doctor, resumed = await resume(client, links["doctor-1"], doctor_id)

    assert resumed["type"] == "resumed"
    assert await closing(old) == ([], 1001, "resumed by a newer connection")
    await patient.send_json({"type": "offer", "to": doctor_id, "sdp": "v=0 after"})
    assert await doctor.receive_json(timeout=5) == {
        "type": "offer",
        "from": patient_id,
        "sdp": "v=0 after",
    }
    await doctor.send_json({"type": "answer", "to": patient_id, "sdp": "v=0 answer"})
    assert await patient.receive_json(timeout=5) == {  # no peer-left before it
        "type": "answer",
        "from": doctor_id,
        "sdp": "v=0 answer",
    }
    await doctor.close()
    await patient.close()


async def test_a_page_resumed_on_a_third_replica_still_hears_its_peer_through_the_store(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """The doctor's page resumes on a replica that serves nobody else in the call (its id
    still names the stopped one): what the patient's replica posts to it, before and after
    the resume, reaches it once and in order, and its answers reach the patient."""
    call = await doctors_replica_stopped(make_client, clock)
    third = await make_client(**WEBRTC)
    await call.patient.send_json({"type": "offer", "to": call.doctor_id, "sdp": "v=0 before"})

    doctor, resumed = await resume(third, call.links["doctor-1"], call.doctor_id)

    assert resumed["type"] == "resumed"
    assert resumed["self"]["id"] == call.doctor_id
    assert call.doctor_id in provider(third).hub.local  # adopted: served here under its old id
    await call.patient.send_json({"type": "offer", "to": call.doctor_id, "sdp": "v=0 after"})
    for sdp in ("v=0 before", "v=0 after"):
        assert await doctor.receive_json(timeout=5) == {
            "type": "offer",
            "from": call.patient_id,
            "sdp": sdp,
        }
    await doctor.send_json({"type": "answer", "to": call.patient_id, "sdp": "v=0 answer"})
    assert await call.patient.receive_json(timeout=5) == {
        "type": "answer",
        "from": call.doctor_id,
        "sdp": "v=0 answer",
    }
    await call.patient.send_json({"type": "media", "audio": False, "video": True})
    assert await doctor.receive_json(timeout=5) == {
        "type": "media",
        "from": call.patient_id,
        "audio": False,
        "video": True,
    }
    with contextlib.suppress(TimeoutError):  # nothing twice
        extra = await doctor.receive_json(timeout=0.5)
        raise AssertionError(f"delivered again: {extra}")
    await doctor.close()
    await call.patient.close()


async def test_a_revocation_cuts_off_a_page_resumed_on_another_replica(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """The patient's replica stops and its page resumes on a third one: revoking the
    patient's link, on the doctor's replica, still ends that page, and the doctor is told."""
    first, second, third = [await make_client(**WEBRTC) for _ in range(3)]
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    doctor, joined_doctor = await open_call(second, links["doctor-1"])
    patient, joined_patient = await open_call(first, links["patient-1"])
    _, patient_id = await introduced(doctor, joined_doctor, joined_patient)
    await provider(first).close_connections()
    assert await closing(patient) == STOPPED
    patient, resumed = await resume(third, links["patient-1"], patient_id)
    assert resumed["type"] == "resumed"

    path = f"/teleconsultation/{room_id}/participants/patient-1/link"
    response = await second.delete(path, headers={"miauserid": "doctor-1"})

    assert response.status == 204
    assert await patient.receive_json(timeout=5) == {"type": "ended", "reason": "link_revoked"}
    assert await closing(patient) == ([], 4000, "call ended")
    assert await doctor.receive_json(timeout=5) == {"type": "peer-left", "id": patient_id}
    await doctor.close()


async def test_an_old_connection_left_open_on_another_replica_sends_its_page_to_join_afresh(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """The page resumed on another replica while its first replica still held its old
    connection (half-open); when that one closes it leaves the seat: the others are told,
    and the resumed page is told to reconnect (1013), so it joins afresh."""
    first, second = await make_client(**WEBRTC), await make_client(**WEBRTC)
    _, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    old, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(first, links["patient-1"])
    doctor_id, _ = await introduced(old, joined_doctor, joined_patient)
    doctor, resumed = await resume(second, links["doctor-1"], doctor_id)
    assert resumed["type"] == "resumed"

    await old.close()

    assert await patient.receive_json(timeout=5) == {"type": "peer-left", "id": doctor_id}
    assert await closing(doctor) == ([], 1013, "presence lost; reconnect")
    again, joined = await resume(second, links["doctor-1"], doctor_id)
    assert joined["type"] == "joined"
    assert joined["self"]["id"] != doctor_id
    for ws in (again, patient):
        await ws.close()
