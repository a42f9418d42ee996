"""The usage.md flow through the bandyer plugin, against the fake Kaleyra server.

Each test asserts what Kaleyra received (paths, apikey, roles, admins, tools,
duration) as well as what our API answered.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from teleconsult_bandyer import BandyerVideo

from teleconsult.core.domain import TOOLS
from teleconsult.services import SERVICES
from tests.fakes.kaleyra import FakeKaleyra, Fault
from tests.helpers import (
    API_KEY,
    DOCTOR,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    bandyer_env,
    create,
    error,
    free_port,
    join,
    person,
    teleconsultation,
)

CONFIG = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"chat": True, "screen_sharing": True}},
        "plus": {"groups": ["doctor"]},
    }
}
ALL_ON = dict.fromkeys(TOOLS, True)
PATIENT_TOOLS = {tool: tool in ("chat", "screen_sharing") for tool in TOOLS}


def room_request(*participants: tuple[str, bool], duration: int | None = 3600) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participants": [
            {"user_id": user, "is_admin": admin, "tools": ALL_ON if admin else PATIENT_TOOLS}
            for user, admin in participants
        ],
        "recording": "none",
        "live": False,
        "call_type": "audio_video",
    }
    if duration is not None:
        body["duration"] = duration
    return body


@pytest.fixture
async def bandyer(make_client: MakeClient, kaleyra_url: str) -> Client:
    return await make_client(
        CONFIG,
        **bandyer_env(
            kaleyra_url,
            UNLIMITED_TELECONSULTATION="false",
            LIVE_TELECONSULTATION="false",
            IMMUTABLE_PERIOD_MS=str(10 * 60 * 1000),
        ),
    )


async def test_the_whole_flow_through_kaleyra(
    bandyer: Client, kaleyra: FakeKaleyra, clock: FrozenClock
) -> None:
    # Created with two of three participants known: two users, no room.
    room_id = await create(bandyer, teleconsultation(3, DOCTOR, PATIENT))
    # (users are created concurrently, so in no particular order)
    assert sorted((r.method, r.path, str(r.body)) for r in kaleyra.requests) == [
        ("POST", "/v2/users", str({"id": "doctor-1", "role": "plus"})),
        ("POST", "/v2/users", str({"id": "patient-1", "role": "basic"})),
    ]
    assert {r.api_key for r in kaleyra.requests} == {API_KEY}
    assert (await join(bandyer, room_id, "doctor-1"))[1]["accessLinkURL"] is None

    # The last participant arrives: one more user, then the room.
    kaleyra.requests.clear()
    response = await bandyer.post(f"/teleconsultation/{room_id}/participants/data", json=NURSE)
    assert response.status == 201
    assert [(r.method, r.path, r.body) for r in kaleyra.requests] == [
        ("POST", "/v2/users", {"id": "nurse-1", "role": "basic"}),
        (
            "POST",
            "/v2/rooms",
            room_request(("doctor-1", True), ("patient-1", False), ("nurse-1", False)),
        ),
    ]
    [first_room] = kaleyra.rooms

    # An update that changes the room: the new room first, then the old one deleted.
    kaleyra.requests.clear()
    response = await bandyer.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [DOCTOR, NURSE]}, "duration_in_seconds": 1800},
    )
    assert response.status == 204
    assert [(r.method, r.path, r.body) for r in kaleyra.requests] == [
        ("POST", "/v2/rooms", room_request(("doctor-1", True), ("nurse-1", False), duration=1800)),
        ("DELETE", f"/v2/rooms/{first_room}", None),
    ]
    [second_room] = kaleyra.rooms
    assert second_room != first_room

    # Outside the immutable window: no link. Inside it: Kaleyra's link for each.
    status, body = await join(bandyer, room_id, "nurse-1")
    assert (status, body["accessLinkURL"]) == (200, None)
    clock.now = clock.now.replace(hour=15, minute=20)
    links = {
        user: (await join(bandyer, room_id, user))[1]["accessLinkURL"]
        for user in ("doctor-1", "nurse-1")
    }
    assert all("/eu/direct-rest-call-handler/" in link for link in links.values())
    assert links["doctor-1"] != links["nurse-1"]
    details = kaleyra.rooms[second_room]["details"]
    assert (await join(bandyer, room_id, "nurse-1"))[1] == {
        "bandyerUserId": "nurse-1",
        "accessLinkURL": links["nurse-1"],
        "participantsBandyerCall": [
            {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
            {"bandyerUserId": "nurse-1", "fullName": "Ann Lee"},
        ],
        "details": {
            "recording": "none",
            "recordingStatus": "stopped",
            "callType": "audio_video",
            "description": None,
            "status": "pending",
            "disabled": False,
            "creationDate": details["creation_date"],
            "durationInSeconds": 1800,
            "durationUsedInSeconds": 0,
            "live": False,
        },
    }
    assert links["nurse-1"].endswith("?l=it")

    # Cancel: the room is deleted on Kaleyra.
    kaleyra.requests.clear()
    response = await bandyer.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert [(r.method, r.path) for r in kaleyra.requests] == [
        ("DELETE", f"/v2/rooms/{second_room}")
    ]
    assert kaleyra.rooms == {}


async def test_all_known_at_creation_makes_the_room_at_once(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    [room_call] = kaleyra.calls("create_room")
    assert room_call.body == room_request(("doctor-1", True), ("patient-1", False))


async def test_unlimited_live_rooms_carry_no_duration(
    make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url, DEFAULT_RECORDING_TYPE="automatic"))
    await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [room_call] = kaleyra.calls("create_room")
    assert "duration" not in room_call.body
    assert room_call.body["live"] is True
    assert room_call.body["recording"] == "automatic"


async def test_known_users_are_not_created_again(bandyer: Client, kaleyra: FakeKaleyra) -> None:
    await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    assert len(kaleyra.calls("create_user")) == 2
    assert len(kaleyra.calls("create_room")) == 2


async def test_two_requests_introducing_one_new_user_make_one_user(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    responses = await asyncio.gather(
        *(bandyer.post("/teleconsultation", json=teleconsultation(3, DOCTOR)) for _ in range(2))
    )
    assert [response.status for response in responses] == [201, 201]
    assert kaleyra.users == {"doctor-1": "plus"}
    assert await bandyer.app[SERVICES].store.users.find_user("bandyer", "doctor-1") == "doctor-1"


async def test_a_user_already_on_kaleyra_is_taken_as_created(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    kaleyra.users["doctor-1"] = "plus"  # created by an earlier installation
    await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    assert await bandyer.app[SERVICES].store.users.find_user("bandyer", "doctor-1") == "doctor-1"


async def test_external_ids_outside_kaleyras_alphabet_get_a_derived_id(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    auth0_doctor = person("auth0|doc", ["doctor"], "Doc")
    room_id = await create(bandyer, teleconsultation(2, auth0_doctor, PATIENT))
    [user_call] = [c for c in kaleyra.calls("create_user") if c.body["role"] == "plus"]
    assert user_call.body["id"].startswith("h-")
    _, body = await join(bandyer, room_id, "auth0|doc")
    assert body["bandyerUserId"] == user_call.body["id"]


# -- faults -------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_its_retry_after(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(status=429, retry_after="0"))

    room_id = await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))

    assert len(kaleyra.calls("create_room")) == 2
    assert len(kaleyra.rooms) == 1
    record = await bandyer.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None


async def test_a_5xx_on_room_creation_is_a_502_and_leaves_the_record_unchanged(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    room_id = await create(bandyer, teleconsultation(2, DOCTOR))
    before = await bandyer.app[SERVICES].store.records.get(room_id)
    kaleyra.fail("create_room", Fault(status=500))

    response = await bandyer.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)

    assert response.status == 502
    assert await response.json() == error(
        502, "The bandyer provider failed to create a room: HTTP 500: injected fault"
    )
    assert len(kaleyra.calls("create_room")) == 1  # a room creation is never repeated blindly
    assert await bandyer.app[SERVICES].store.records.get(room_id) == before


async def test_a_5xx_on_user_creation_is_retried(bandyer: Client, kaleyra: FakeKaleyra) -> None:
    kaleyra.fail("create_user", Fault(status=503))
    await create(bandyer, teleconsultation(2, DOCTOR))
    assert len(kaleyra.calls("create_user")) == 2
    assert kaleyra.users == {"doctor-1": "plus"}


async def test_a_timeout_is_a_504(bandyer: Client, kaleyra: FakeKaleyra) -> None:
    kaleyra.fail("create_room", Fault(delay=1.0))

    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == 504
    assert await response.json() == error(
        504, "The bandyer provider failed to create a room: no answer within 0.5 s"
    )


async def test_an_unreachable_provider_is_a_503(make_client: MakeClient) -> None:
    client = await make_client(
        **bandyer_env(f"http://127.0.0.1:{free_port()}", BANDYER_MAX_ATTEMPTS="2")
    )

    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == 503
    assert await response.json() == error(
        503,
        "The bandyer provider failed to create a user: cannot connect",
        code="provider_unavailable",
    )


async def test_a_malformed_answer_is_a_502(bandyer: Client, kaleyra: FakeKaleyra) -> None:
    kaleyra.fail("create_room", Fault(malformed=True))

    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == 502
    assert await response.json() == error(
        502, "The bandyer provider failed to create a room: the HTTP 200 answer is not JSON"
    )


async def test_a_wrong_api_key_is_a_502_that_does_not_show_the_key(
    make_client: MakeClient, kaleyra_url: str
) -> None:
    client = await make_client(
        **bandyer_env(kaleyra_url, BANDYER_API_SECRET_KEY="the-secret-key-123")
    )
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 502
    body = await response.text()
    assert "the-secret-key-123" not in body
    assert await response.json() == error(
        502, "The bandyer provider failed to create a user: HTTP 401: invalid api key"
    )


async def test_a_failed_deletion_on_cancel_is_finished_by_the_reconciler(
    bandyer: Client, kaleyra: FakeKaleyra, clock: FrozenClock
) -> None:
    room_id = await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    kaleyra.fail("delete_room", Fault(status=500, times=3))

    response = await bandyer.delete(f"/teleconsultation/{room_id}")

    assert response.status == 204  # cancelling never fails because of the provider
    assert len(kaleyra.calls("delete_room")) == 3  # deleting is safe to repeat
    assert (await join(bandyer, room_id, "doctor-1"))[0] == 404  # no link to the room
    assert len(kaleyra.rooms) == 1
    clock.advance(seconds=11)
    assert await bandyer.app[SERVICES].reconciler.run_once() == 1
    assert kaleyra.rooms == {}


async def test_a_room_already_gone_counts_as_deleted(bandyer: Client, kaleyra: FakeKaleyra) -> None:
    room_id = await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    kaleyra.rooms.clear()  # deleted on Kaleyra's side

    response = await bandyer.delete(f"/teleconsultation/{room_id}")

    assert response.status == 204


async def test_the_http_session_lives_and_dies_with_the_app(
    make_client: MakeClient, kaleyra_url: str
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url))
    provider = client.app[SERVICES].video
    assert isinstance(provider, BandyerVideo)
    session = provider.client.http.session
    assert not session.closed

    await client.close()

    assert session.closed
