"""After `teleconsult migrate`, with the settings the runbook prescribes, the five endpoints
answer on the migrated ids as the original did, through the bandyer provider and the fake
Kaleyra; known people keep their Kaleyra users; check-up counts what is left unmigrated."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from teleconsult import __version__
from tests.fake_auth0 import FakeAuth0Client
from tests.fakes.kaleyra import FakeKaleyra
from tests.helpers import END, START, MakeClient, error, join
from tests.migration.originals import (
    APPLY,
    RECORDS,
    USERS,
    doctor,
    environ,
    link,
    migrate,
    oid,
    patient,
    record,
    seed,
    user,
)

Client = TestClient[Any, Any]


@pytest.fixture
async def migrated(
    database: Any, kaleyra: FakeKaleyra, kaleyra_url: str, make_client: MakeClient
) -> Client:
    """The service on the original's data, once migrated (the runbook's settings)."""
    await seed(database, kaleyra)
    await migrate(database, kaleyra_url, APPLY)
    kaleyra.requests.clear()
    return await make_client(None, **environ(kaleyra_url))


def called(kaleyra: FakeKaleyra) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.body) for r in kaleyra.requests]


async def test_a_locked_consultation_hands_out_the_links_the_original_did(
    migrated: Client, kaleyra: FakeKaleyra
) -> None:
    room_id = str(oid(1))
    answers = {user: await join(migrated, room_id, user) for user in ("doctor-1", "patient-1")}
    call = [
        {"bandyerUserId": "kaleyra-doctor-1", "fullName": "Joe Smith"},
        {"bandyerUserId": "kaleyra-patient-1", "fullName": "Jane Doe"},
    ]
    details = {
        "recording": "none",
        "recordingStatus": "stopped",
        "callType": "audio_video",
        "description": None,
        "status": "pending",
        "disabled": False,
        "creationDate": "2030-02-01T09:00:00+00:00",
        "durationInSeconds": None,
        "durationUsedInSeconds": 0,
        "live": True,
    }
    assert answers == {
        "doctor-1": (
            200,
            {
                "bandyerUserId": "kaleyra-doctor-1",
                "accessLinkURL": link("c-0") + "?l=it",
                "participantsBandyerCall": call,
                "details": details,
            },
        ),
        "patient-1": (
            200,
            {
                "bandyerUserId": "kaleyra-patient-1",
                "accessLinkURL": link("c-1") + "?l=it",
                "participantsBandyerCall": call,
                "details": details,
            },
        ),
    }
    assert await join(migrated, room_id, "someone-else") == (
        401,
        error(
            401, "The caller is not a participant of this teleconsultation.", "Unauthorized user"
        ),
    )
    # Locked: no change; the room the links lead to stays.
    response = await migrated.patch(f"/teleconsultation/{room_id}", json={"end_date": END})
    assert (response.status, (await response.json())["code"]) == (409, "locked")
    assert [(m, p) for m, p, _ in called(kaleyra) if m != "GET"] == []

    # Cancelled: Kaleyra's room goes, the record is trashed (and kept).
    kaleyra.requests.clear()
    response = await migrated.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert called(kaleyra) == [("DELETE", "/v2/rooms/room_locked", None)]
    assert (await join(migrated, room_id, "doctor-1"))[0] == 404


async def test_before_the_window_a_change_replaces_the_originals_room(
    migrated: Client, kaleyra: FakeKaleyra, database: Any
) -> None:
    room_id = str(oid(2))
    status, body = await join(migrated, room_id, "doctor-1")
    assert (status, body["accessLinkURL"]) == (200, None)
    kaleyra.requests.clear()
    other = {**patient(), "userExternalId": "patient-2"}
    response = await migrated.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [doctor(), other]}},
    )
    assert response.status == 204
    [new_user, (create, rooms, request), delete] = called(kaleyra)
    assert new_user == ("POST", "/v2/users", {"id": "patient-2", "role": "basic"})
    assert (create, rooms) == ("POST", "/v2/rooms")
    assert [(p["user_id"], p["is_admin"]) for p in request["participants"]] == [
        ("kaleyra-doctor-1", True),
        ("patient-2", False),
    ]
    assert delete == ("DELETE", "/v2/rooms/room_future", None)
    assert "room_future" not in kaleyra.rooms
    stored = await database[RECORDS].find_one({"_id": oid(2)})
    assert stored["version"] == 2
    assert stored["providerRoomId"] in kaleyra.rooms


async def test_the_last_participant_makes_the_room_with_known_kaleyra_users(
    migrated: Client, kaleyra: FakeKaleyra
) -> None:
    room_id = str(oid(3))
    response = await migrated.post(
        f"/teleconsultation/{room_id}/participants/data",
        json={k: v for k, v in patient().items()},
    )
    assert response.status == 201
    # No user created: both are in the user map (one from an early version's `auth0Id`).
    [(method, path, request)] = called(kaleyra)
    assert (method, path) == ("POST", "/v2/rooms")
    assert [p["user_id"] for p in request["participants"]] == [
        "kaleyra-doctor-1",
        "kaleyra-patient-1",
    ]


async def test_a_known_person_keeps_their_kaleyra_user_in_a_new_teleconsultation(
    migrated: Client, kaleyra: FakeKaleyra
) -> None:
    body = {
        "participants": {"number": 2, "data": [doctor(), {**patient(), "userExternalId": "new"}]},
        "start_date": START,
        "end_date": END,
    }
    response = await migrated.post("/teleconsultation", json=body)
    assert response.status == 201
    assert called(kaleyra)[0] == ("POST", "/v2/users", {"id": "new", "role": "basic"})
    [(_, _, request)] = [c for c in called(kaleyra) if c[1] == "/v2/rooms"]
    assert [p["user_id"] for p in request["participants"]] == ["kaleyra-doctor-1", "new"]


async def test_trashed_and_unmigrated_records(migrated: Client) -> None:
    assert (await join(migrated, str(oid(4)), "doctor-1"))[0] == 404
    status, body = await join(migrated, str(oid(6)), "doctor-1")
    assert (status, body) == (
        500,
        error(
            500,
            f"The stored teleconsultation {oid(6)} is not in the form this service writes (it "
            "may come from the original service): run `teleconsult migrate` "
            "(docs/operations.md, 'Coming from the original service').",
            "Internal Server Error",
            code="unreadable_record",
        ),
    )
    response = await migrated.get("/-/check-up")
    assert (response.status, await response.json()) == (
        200,
        {"status": "OK", "name": "teleconsult", "version": __version__, "unmigratedRecords": 4},
    )


async def test_check_up_counts_the_originals_records_until_they_are_migrated(
    database: Any, kaleyra_url: str, make_client: MakeClient
) -> None:
    await database[RECORDS].insert_many([record(1, participants=[doctor()]), record(2)])
    client = await make_client(None, **environ(kaleyra_url))
    response = await client.get("/-/check-up")
    assert await response.json() == {
        "status": "OK",
        "name": "teleconsult",
        "version": __version__,
        "unmigratedRecords": 2,
    }
    await database[USERS].insert_one(user(1, "doctor-1", "kaleyra-doctor-1"))
    await migrate(database, kaleyra_url, APPLY)
    response = await client.get("/-/check-up")
    assert await response.json() == {"status": "OK", "name": "teleconsult", "version": __version__}


async def test_in_auth0_mode_groups_and_names_come_from_the_identity_provider(
    database: Any, kaleyra_url: str, aiohttp_server: Any, make_client: MakeClient
) -> None:
    auth0 = FakeAuth0Client(
        users={
            "auth0|doc": {"name": "Joe Smith", "groups": ["doctor"]},
            "auth0|pat": {"name": "Jane Doe", "groups": ["patient"]},
        }
    )
    server: TestServer = await aiohttp_server(auth0.app())
    auth_service = str(server.make_url("")).rstrip("/")
    # As the original stores them in auth0 mode: ids, languages, Kaleyra users and links.
    stored = [
        {"userExternalId": "auth0|doc", "language": "it", "userBandyerId": "k-doc", "accessLinkURL": link("d")},
        {"userExternalId": "auth0|pat", "language": "it", "userBandyerId": "k-pat", "accessLinkURL": link("p")},
    ]  # fmt: skip
    unknown = {"userExternalId": "auth0|gone", "language": "it", "userBandyerId": "k-gone"}
    await database[RECORDS].insert_many(
        [
            record(1, bandyerRoomId="room_a", participants=stored),
            record(2, participants=[unknown]),
        ]
    )
    summary = await migrate(database, kaleyra_url, APPLY, AUTH_SERVICE=auth_service)
    assert summary.teleconsultations.counts == {
        "migrated": 1,
        "cannot_migrate:identity_refused": 1,
    }
    document = await database[RECORDS].find_one({"_id": oid(1)})
    assert [(p["groups"], p["fullName"], p["level"]) for p in document["participants"]] == [
        (["doctor"], "Joe Smith", "plus"),
        (["patient"], "Jane Doe", "basic"),
    ]
    client = await make_client(None, **environ(kaleyra_url, AUTH_SERVICE=auth_service))
    status, body = await join(client, str(oid(1)), "auth0|pat")
    assert (status, body["accessLinkURL"]) == (200, None)  # hours before the start
    assert body["participantsBandyerCall"][0] == {"bandyerUserId": "k-doc", "fullName": "Joe Smith"}
