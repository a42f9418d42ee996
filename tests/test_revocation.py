"""Revoking one participant's link, removing them and letting them back in (issue 30), through
the HTTP API and the call's WebSockets, with the `webrtc` provider on two replicas sharing the
test's store (SQLite, or mongomock with TEST_STORE=mongomock)."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import ClientConnectionResetError, WSMsgType
from teleconsult_webrtc.rooms import Joined, Peer, Refused, RoomState, seat

from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    STARTED,
    WEBRTC,
    Client,
    FrozenClock,
    MakeClient,
    closing,
    create,
    error,
    introduced,
    join,
    open_call,
    path_of,
    teleconsultation,
    webrtc_call,
)

DOCTOR_ASKS = {"miauserid": "doctor-1"}
REVOKED = {"type": "ended", "reason": "link_revoked"}
REMOVED = {"type": "ended", "reason": "removed"}
BLOCKED = error(
    403,
    "You were removed from this teleconsultation: no link is handed out to you. Ask its "
    "organiser to let you back in.",
    code="participant_blocked",
)


def link_path(room_id: str, user: str) -> str:
    return f"/teleconsultation/{room_id}/participants/{user}/link"


def block_path(room_id: str, user: str) -> str:
    return f"/teleconsultation/{room_id}/participants/{user}/block"


async def ending_of(client: Client, link: str) -> tuple[int, dict[str, Any]]:
    """What the page's own info request answers for `link`."""
    response = await client.get(path_of(link) + "/info")
    return response.status, await response.json()


async def test_a_revoked_link_is_cut_off_on_the_other_replica_and_a_new_one_is_handed_out(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(second, links["patient-1"])
    _, patient_id = await introduced(doctor, joined_doctor, joined_patient)

    response = await first.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    assert await patient.receive_json(timeout=5) == REVOKED  # served by the other replica
    closed = await patient.receive(timeout=5)
    assert (closed.type, closed.data, closed.extra) == (WSMsgType.CLOSE, 4000, "call ended")
    assert await doctor.receive_json(timeout=5) == {"type": "peer-left", "id": patient_id}
    for replica in (first, second):  # the old link opens nothing, on either replica
        assert await ending_of(replica, links["patient-1"]) == (
            410,
            {
                "statusCode": 410,
                "error": "Gone",
                "message": "Questo link della chiamata è stato ritirato.",
                "reason": "revoked",
            },
        )
        page = await replica.get(path_of(links["patient-1"]))
        assert page.status == 410
        assert 'data-reason="revoked"' in await page.text()
        socket = await replica.get(path_of(links["patient-1"]) + "/ws")
        assert socket.status == 410
    status, body = await join(second, room_id, "patient-1")
    assert status == 200
    assert body["accessLinkURL"] != links["patient-1"]
    again, rejoined = await open_call(second, body["accessLinkURL"])  # the new link works
    assert [peer["name"] for peer in rejoined["peers"]] == ["Joe Smith"]
    await again.close()
    await doctor.close()


async def test_a_page_that_ignores_its_revocation_loses_the_call_anyway(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """A raw client speaking the page's protocol that keeps signaling after being told: the
    server closes it, and the others no longer hear it (they closed their peer connections)."""
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT, NURSE)
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    nurse, joined_nurse = await open_call(first, links["nurse-1"])  # on the same replica
    doctor_id, nurse_id = await introduced(doctor, joined_doctor, joined_nurse)
    patient, _ = await open_call(second, links["patient-1"])
    assert (await doctor.receive_json(timeout=5))["type"] == "peer-joined"
    assert (await nurse.receive_json(timeout=5))["type"] == "peer-joined"

    response = await second.delete(link_path(room_id, "nurse-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    assert await nurse.receive_json(timeout=5) == REVOKED
    with contextlib.suppress(ClientConnectionResetError):  # the server closed it meanwhile
        for _ in range(5):  # it ignores that and keeps going, until the server is done with it
            await nurse.send_json({"type": "offer", "to": doctor_id, "sdp": "v=0 still here"})
    assert await closing(nurse) == ([], 4000, "call ended")
    assert await doctor.receive_json(timeout=5) == {"type": "peer-left", "id": nurse_id}
    assert await patient.receive_json(timeout=5) == {"type": "peer-left", "id": nurse_id}
    await doctor.send_json({"type": "media", "audio": False, "video": True})
    assert await patient.receive_json(timeout=5) == {
        "type": "media",
        "from": doctor_id,
        "audio": False,
        "video": True,
    }  # the next thing the patient hears: nothing the revoked page sent reached it
    reconnect = await first.get(path_of(links["nurse-1"]) + "/ws")
    assert reconnect.status == 410
    await doctor.close()
    await patient.close()


async def test_a_removed_participant_is_kept_out_until_let_back_in(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    patient, _ = await open_call(second, links["patient-1"])

    response = await first.put(block_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    assert await patient.receive_json(timeout=5) == REMOVED
    assert await join(second, room_id, "patient-1") == (403, BLOCKED)
    assert await ending_of(second, links["patient-1"]) == (
        403,
        {
            "statusCode": 403,
            "error": "Forbidden",
            "message": "Non fa più parte di questa chiamata.",
            "reason": "removed",
        },
    )
    response = await second.delete(block_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 204
    status, body = await join(first, room_id, "patient-1")
    assert status == 200
    assert body["accessLinkURL"] != links["patient-1"]
    assert (await ending_of(second, links["patient-1"]))[0] == 410  # the old one stays revoked
    assert (await first.get(path_of(body["accessLinkURL"]) + "/info")).status == 200
    again = await second.delete(block_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert again.status == 204  # not blocked: nothing to do


async def test_who_may_revoke_remove_and_let_back_in(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(ALLOW_ANONYMOUS_WRITES="false", **WEBRTC)
    room_id, _ = await webrtc_call(client, clock, DOCTOR, PATIENT, NURSE, by="doctor-1")
    nurse = {"miauserid": "nurse-1"}
    no_revoking = error(
        403,
        "Only the teleconsultation's creator, its plus participants, members of ADMIN_GROUPS or "
        "MANAGER_GROUPS, and the participant themselves may revoke a participant's link.",
    )
    no_blocking = error(
        403,
        "Only the teleconsultation's creator, its plus participants and members of ADMIN_GROUPS "
        "or MANAGER_GROUPS may remove a participant or let them back in.",
    )

    for headers in (nurse, {"miauserid": "stranger-1"}, {}):
        response = await client.delete(link_path(room_id, "patient-1"), headers=headers)
        assert (response.status, await response.json()) == (403, no_revoking)
        response = await client.put(block_path(room_id, "patient-1"), headers=headers)
        assert (response.status, await response.json()) == (403, no_blocking)
    response = await client.delete(link_path(room_id, "nurse-1"), headers=nurse)  # their own
    assert response.status == 204
    response = await client.put(block_path(room_id, "nurse-1"), headers=DOCTOR_ASKS)
    assert response.status == 204
    response = await client.delete(block_path(room_id, "nurse-1"), headers=nurse)
    assert (response.status, await response.json()) == (403, no_blocking)  # not themselves
    response = await client.delete(link_path(room_id, "nobody-1"), headers=DOCTOR_ASKS)
    assert (response.status, await response.json()) == (
        404,
        error(
            404,
            f"Participant 'nobody-1' is not in teleconsultation {room_id!r}.",
            "Participant not found",
        ),
    )


async def test_managers_may_and_a_teleconsultation_without_a_room_has_nothing_to_revoke(
    make_client: MakeClient,
) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries", **WEBRTC)
    manager = {"miauserid": "secretary-1", "miausergroups": "secretaries"}
    room_id = await create(client, teleconsultation(3, DOCTOR, PATIENT), headers=manager)

    response = await client.delete(link_path(room_id, "patient-1"), headers=manager)

    assert (response.status, await response.json()) == (
        409,
        error(
            409,
            "This teleconsultation has no room yet (not every participant is known), so no link "
            "was handed out: there is nothing to revoke.",
            code="no_room",
        ),
    )
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data", json=NURSE, headers=manager
    )
    assert response.status == 201
    response = await client.delete(link_path(room_id, "patient-1"), headers=manager)
    assert response.status == 204


async def test_the_page_of_a_plus_participant_removes_a_peer(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """`POST <link>/remove {"peer"}`: the doctor's page removes the nurse's connection's
    participant; a basic participant's page may not, and a body without a peer is a 400."""
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT, NURSE)
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    nurse, joined_nurse = await open_call(second, links["nurse-1"])
    _, nurse_id = await introduced(doctor, joined_doctor, joined_nurse)
    remove = path_of(links["doctor-1"]) + "/remove"

    by_patient = await first.post(path_of(links["patient-1"]) + "/remove", json={"peer": nurse_id})
    assert (by_patient.status, await by_patient.json()) == (
        403,
        error(403, "Only a plus participant's page may remove someone from the call."),
    )
    for body in ({}, {"peer": 5}, {"peer": ""}):
        response = await first.post(remove, json=body)
        assert (response.status, await response.json()) == (
            400,
            error(400, 'The body must be {"peer": "<a peer id from the call>"}.'),
        )
    response = await first.post(remove, json={"peer": joined_doctor["self"]["id"]})
    assert (response.status, await response.json()) == (
        400,
        error(400, "A page cannot remove its own participant; Leave instead."),
    )
    response = await first.post(remove, json={"peer": "nobody"})
    assert (response.status, await response.json()) == (
        404,
        error(404, "That participant already left the call."),
    )

    response = await first.post(remove, json={"peer": nurse_id})

    assert response.status == 204
    assert await nurse.receive_json(timeout=5) == REMOVED
    assert await doctor.receive_json(timeout=5) == {"type": "peer-left", "id": nurse_id}
    assert await join(second, room_id, "nurse-1") == (403, BLOCKED)
    record = await first.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.updater_id == "doctor-1"  # removed as the doctor
    await doctor.close()


def test_a_connection_admitted_before_a_revocation_takes_no_seat_after_it() -> None:
    """The room refuses a join whose credential is of an earlier generation than the one it
    holds: a page checked just before the revocation cannot sit down just after it."""
    state = RoomState(
        participants={"doctor-1": True, "patient-1": False},
        duration_seconds=None,
        live=False,
        recording="none",
        created_at="2030-02-22T15:00:00.000Z",
        generations={"patient-1": 2},
    )

    assert seat(state, Peer("old", "patient-1", 1), STARTED, 0) == Refused(
        "revoked", "link_revoked"
    )
    assert isinstance(seat(state, Peer("new", "patient-1", 2), STARTED, 0), Joined)
    assert RoomState.from_document(state.to_document()) == state
