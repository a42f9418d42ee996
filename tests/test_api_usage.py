"""The examples of usage.md (static identity, typos fixed), through the HTTP API."""

from __future__ import annotations

import json
import re

import pytest

from teleconsult.services import SERVICES
from teleconsult.store.base import RoomJob
from tests.helpers import Client, create, error, fake_video, join, person

# The usage document's own example bodies, with their missing commas and quote restored.
USAGE_CREATE_SOME_UNKNOWN = {
    "participants": {
        "number": 3,
        "data": [
            {
                "userExternalId": "user1_external_id",
                "groups": ["doctor"],
                "fullName": "Joe Smith",
                "language": "it",
            },
            {
                "userExternalId": "user3_external_id",
                "groups": ["patient"],
                "fullName": "Jane Doe",
                "language": "it",
            },
        ],
    },
    "start_date": "2030-02-22T15:30:00.000Z",
    "end_date": "2030-02-22T16:30:00.000Z",
}
USAGE_ADD = {
    "userExternalId": "user1_external_id",
    "groups": ["doctor"],
    "fullName": "Joe Smith",
    "language": "it",
}
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


async def test_create_with_some_participants_unknown_makes_no_room(client: Client) -> None:
    response = await client.post("/teleconsultation", json=USAGE_CREATE_SOME_UNKNOWN)

    assert response.status == 201
    body = await response.json()
    assert list(body) == ["roomId"]
    assert OBJECT_ID.match(body["roomId"])
    assert fake_video(client).rooms == {}
    # Each participant became a provider user as soon as they were first seen.
    assert set(fake_video(client).users) == {"user1_external_id", "user3_external_id"}


async def test_get_before_the_room_exists_gives_a_null_link(client: Client) -> None:
    room_id = await create(client, USAGE_CREATE_SOME_UNKNOWN)

    assert await join(client, room_id, "user1_external_id") == (
        200,
        {
            "bandyerUserId": "user1_external_id",
            "accessLinkURL": None,
            "participantsBandyerCall": [
                {"bandyerUserId": "user1_external_id", "fullName": "Joe Smith"},
                {"bandyerUserId": "user3_external_id", "fullName": "Jane Doe"},
            ],
        },
    )


async def test_adding_the_last_participant_creates_the_room(client: Client) -> None:
    body = {**USAGE_CREATE_SOME_UNKNOWN}
    body["participants"] = {
        "number": 2,
        "data": [person("user3_external_id", ["patient"], "Jane Doe")],
    }
    room_id = await create(client, body)

    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=USAGE_ADD)

    assert response.status == 201
    assert await response.read() == b""
    rooms = list(fake_video(client).rooms.values())
    assert len(rooms) == 1
    assert [(p.provider_user_id, p.is_admin) for p in rooms[0].spec.participants] == [
        ("user3_external_id", False),
        ("user1_external_id", True),
    ]


async def test_patch_example_answers_204_and_keeps_the_id(client: Client) -> None:
    room_id = await create(client, USAGE_CREATE_SOME_UNKNOWN)
    patch = {**USAGE_CREATE_SOME_UNKNOWN, "start_date": "2030-02-23T15:30:00.000Z"}
    patch["end_date"] = "2030-02-23T16:30:00.000Z"

    response = await client.patch(f"/teleconsultation/{room_id}", json=patch)

    assert response.status == 204
    assert await response.read() == b""
    status, _ = await join(client, room_id, "user3_external_id")
    assert status == 200


async def test_delete_example_trashes_the_teleconsultation(client: Client) -> None:
    room_id = await create(client, USAGE_CREATE_SOME_UNKNOWN)

    response = await client.delete(f"/teleconsultation/{room_id}")

    assert response.status == 204
    assert await response.read() == b""
    assert await join(client, room_id, "user1_external_id") == (
        404,
        error(
            404,
            f"No teleconsultation has the id {room_id!r}: it never existed or was deleted.",
            f"Room with id {room_id} not found on CRUD",
        ),
    )


async def test_unknown_room_is_the_documented_404(client: Client) -> None:
    room_id = "0123456789abcdef01234567"
    assert await join(client, room_id, "someone") == (
        404,
        error(
            404,
            f"No teleconsultation has the id {room_id!r}: it never existed or was deleted.",
            f"Room with id {room_id} not found on CRUD",
        ),
    )


async def test_caller_who_is_not_a_participant_is_unauthorized(client: Client) -> None:
    room_id = await create(client, USAGE_CREATE_SOME_UNKNOWN)

    assert await join(client, room_id, "intruder") == (
        401,
        error(
            401, "The caller is not a participant of this teleconsultation.", "Unauthorized user"
        ),
    )


async def test_create_without_a_plus_user_is_the_documented_400(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        **USAGE_CREATE_SOME_UNKNOWN,
        "participants": {
            "number": 2,
            "data": [
                person("a", ["patient"], "Ann"),
                person("b", ["patient"], "Bob"),
            ],
        },
    }

    outbox = client.app[SERVICES].store.outbox
    jobs_written: list[RoomJob] = []
    add_job = outbox.add_job

    async def write_down(job: RoomJob) -> None:
        jobs_written.append(job)
        await add_job(job)

    monkeypatch.setattr(outbox, "add_job", write_down)
    response = await client.post("/teleconsultation", json=body)

    assert response.status == 400
    assert await response.json() == error(
        400,
        "At least one participant must belong to a group of the plus privilege level.",
        "Failed POST /teleconsultation: no plus user in room",
        code="no_plus_user",
    )
    assert fake_video(client).users == {}  # refused before anyone was created on the provider
    assert jobs_written == []  # nor a room job written down, even for a moment


def two_patients(number: int) -> dict[str, object]:
    return {
        "participants": {
            "number": number,
            "data": [person("a", ["patient"], "Ann"), person("b", ["patient"], "Bob")],
        }
    }


async def test_patch_without_a_plus_user_is_the_documented_400(client: Client) -> None:
    room_id = await create(client, USAGE_CREATE_SOME_UNKNOWN)

    response = await client.patch(f"/teleconsultation/{room_id}", json=two_patients(2))

    assert response.status == 400
    assert await response.json() == error(
        400,
        "At least one participant must belong to a group of the plus privilege level.",
        "Failed PATCH /teleconsultation: no plus user in room",
        code="no_plus_user",
    )


async def test_adding_the_last_participant_without_a_plus_user_is_the_documented_400(
    client: Client,
) -> None:
    room_id = await create(client, USAGE_CREATE_SOME_UNKNOWN)
    response = await client.patch(f"/teleconsultation/{room_id}", json=two_patients(3))
    assert response.status == 204

    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data",
        json=person("c", ["patient"], "Cid"),
    )

    assert response.status == 400
    assert await response.json() == error(
        400,
        "At least one participant must belong to a group of the plus privilege level.",
        f"Failed POST /teleconsultation/{room_id}/participants/data: no plus user in room",
        code="no_plus_user",
    )


async def test_a_body_without_content_type_is_refused(client: Client) -> None:
    """A cross-site form post can send a body with no type and no preflight: not read."""
    response = await client.post(
        "/teleconsultation",
        data=json.dumps(USAGE_CREATE_SOME_UNKNOWN).encode(),
        skip_auto_headers=["Content-Type"],
    )
    assert response.status == 415
    assert await response.json() == error(
        415,
        "The body must be JSON sent with Content-Type: application/json, "
        "and this one has no Content-Type.",
    )


async def test_the_group_alias_is_accepted(client: Client) -> None:
    body = {
        **USAGE_CREATE_SOME_UNKNOWN,
        "participants": {
            "number": 2,
            "data": [
                {"userExternalId": "d", "group": "doctor", "fullName": "Dee"},
                {"userExternalId": "p", "group": "patient", "fullName": "Pat"},
            ],
        },
    }
    room_id = await create(client, body)
    assert fake_video(client).users == {"d": "plus", "p": "basic"}
    assert len(fake_video(client).rooms) == 1
    assert (await join(client, room_id, "d"))[0] == 200
