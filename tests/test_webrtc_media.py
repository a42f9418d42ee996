"""Each page tells the others its microphone and camera, on or off (`media`): relayed to the
peers in the call only, with the sender's id set by the server, never to a waiting page. A page
that stops sending video to one peer for a weak connection tells that peer only
(`video-paused`)."""

from __future__ import annotations

from tests.helpers import (
    DOCTOR,
    LOBBY,
    NURSE,
    PATIENT,
    FrozenClock,
    MakeClient,
    open_call,
    webrtc_call,
)
from tests.test_webrtc import in_call
from tests.test_webrtc_lobby import knock, next_of


async def test_a_pages_media_state_reaches_every_peer_in_the_call(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock, (DOCTOR, PATIENT, NURSE), ("doctor-1", "patient-1"))
    doctor, patient = call.pages["doctor-1"], call.pages["patient-1"]

    await patient.send_json({"type": "media", "audio": False, "video": True, "extra": "dropped"})
    assert await doctor.receive_json(timeout=5) == {
        "type": "media",
        "from": call.ids["patient-1"],
        "audio": False,
        "video": True,
    }
    nurse, _ = await open_call(call.client, call.links["nurse-1"])
    await next_of(doctor, "peer-joined")
    await next_of(patient, "peer-joined")
    await nurse.send_json({"type": "media", "audio": True, "video": False})
    for page in (doctor, patient):
        message = await next_of(page, "media")
        assert (message["audio"], message["video"]) == (True, False)
    for ws in (doctor, patient, nurse):
        await ws.close()


async def test_a_waiting_page_hears_no_media_state(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**LOBBY)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, _ = await open_call(client, links["doctor-1"])
    patient, _ = await knock(client, links["patient-1"])
    await next_of(doctor, "knock")

    await doctor.send_json({"type": "media", "audio": False, "video": False})
    await doctor.send_json({"type": "end"})  # the first thing the waiting page hears
    assert await next_of(patient, "ended") == {"type": "ended", "reason": "ended_by_host"}
    for ws in (doctor, patient):
        await ws.close()


async def test_video_paused_for_a_weak_connection_reaches_that_peer_only(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    people = ("doctor-1", "patient-1", "nurse-1")
    call = await in_call(make_client, clock, (DOCTOR, PATIENT, NURSE), people)
    doctor, patient, nurse = (call.pages[user] for user in people)

    to_doctor = {"type": "video-paused", "to": call.ids["doctor-1"], "extra": "dropped"}
    await patient.send_json({**to_doctor, "paused": True})
    assert await doctor.receive_json(timeout=5) == {
        "type": "video-paused",
        "from": call.ids["patient-1"],
        "paused": True,
    }
    await patient.send_json({**to_doctor, "paused": False})
    assert (await next_of(doctor, "video-paused"))["paused"] is False
    await patient.send_json({"type": "media", "audio": True, "video": True})
    assert (await next_of(nurse, "media"))["from"] == call.ids["patient-1"]  # nothing before
    for ws in (doctor, patient, nurse):
        await ws.close()
