"""Rooms and their lifecycle: creation, replacement, duration, the immutable window, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from teleconsult.core.domain import TOOLS, RoomParticipant, RoomSpec, Teleconsultation
from teleconsult.core.outbox import JOB_GRACE
from teleconsult.providers.protocols import CreatedRoom
from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    START,
    Client,
    FrozenClock,
    MakeClient,
    create,
    error,
    fake_video,
    join,
    person,
    stored_document,
    teleconsultation,
)


async def test_room_gets_admins_tools_and_the_room_policy(make_client: MakeClient) -> None:
    config = {
        "privileges": {
            "basic": {"groups": ["patient"], "tools": {"chat": True}},
            "plus": {"groups": ["doctor"], "tools": {"chat": True, "whiteboard": True}},
        }
    }
    client = await make_client(
        config, LIVE_TELECONSULTATION="false", DEFAULT_RECORDING_TYPE="manual"
    )
    await create(client, teleconsultation(2, DOCTOR, PATIENT))

    [room] = fake_video(client).rooms.values()
    assert room.spec == RoomSpec(
        participants=(
            RoomParticipant("doctor-1", is_admin=True, tools=("chat", "whiteboard")),
            RoomParticipant("patient-1", is_admin=False, tools=("chat",)),
        ),
        duration_seconds=None,
        live=False,
        recording="manual",
    )


async def test_a_participant_in_both_levels_is_plus(client: Client) -> None:
    both = person("dual", ["patient", "doctor"], "Dee")
    await create(client, teleconsultation(2, both, PATIENT))
    [room] = fake_video(client).rooms.values()
    assert room.spec.participants[0] == RoomParticipant("dual", is_admin=True, tools=TOOLS)


async def test_limited_rooms_take_their_duration_from_the_dates(make_client: MakeClient) -> None:
    client = await make_client(UNLIMITED_TELECONSULTATION="false")
    await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [room] = fake_video(client).rooms.values()
    assert room.spec.duration_seconds == 3600


async def test_duration_in_seconds_replaces_the_end_date(make_client: MakeClient) -> None:
    client = await make_client(UNLIMITED_TELECONSULTATION="false")
    body = teleconsultation(2, DOCTOR, PATIENT)
    del body["end_date"]
    body["duration_in_seconds"] = 900
    await create(client, body)
    [room] = fake_video(client).rooms.values()
    assert room.spec.duration_seconds == 900


async def test_limited_rooms_last_at_least_300_seconds_and_at_most_a_day(
    make_client: MakeClient,
) -> None:
    client = await make_client(UNLIMITED_TELECONSULTATION="false")
    short = teleconsultation(2, DOCTOR, end="2030-02-22T15:34:59.000Z")
    response = await client.post("/teleconsultation", json=short)
    assert response.status == 400
    assert await response.json() == error(
        400,
        "A teleconsultation must last at least 300 seconds; this one lasts 299.",
        path="end_date",
    )

    long = teleconsultation(2, DOCTOR, end="2030-02-23T15:30:01.000Z")
    response = await client.post("/teleconsultation", json=long)
    assert response.status == 400
    assert await response.json() == error(
        400,
        "A teleconsultation may last at most 86400 seconds with this video provider; "
        "this one lasts 86401.",
        path="end_date",
    )


async def test_unlimited_rooms_accept_any_positive_span(client: Client) -> None:
    await create(client, teleconsultation(2, DOCTOR, PATIENT, end="2030-02-22T15:31:00.000Z"))
    [room] = fake_video(client).rooms.values()
    assert room.spec.duration_seconds is None


async def test_changing_participants_replaces_the_room(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [old_room] = fake_video(client).rooms

    response = await client.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [DOCTOR, NURSE]}},
    )

    assert response.status == 204
    [new_room] = fake_video(client).rooms
    assert new_room != old_room
    assert fake_video(client).created_room_count == 2
    assert [p.provider_user_id for p in fake_video(client).rooms[new_room].spec.participants] == [
        "doctor-1",
        "nurse-1",
    ]
    assert (await join(client, room_id, "patient-1"))[0] == 401


async def test_a_change_that_does_not_touch_the_room_keeps_it(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [room] = fake_video(client).rooms

    renamed = {**DOCTOR, "fullName": "Dr Joe Smith", "language": "en"}
    response = await client.patch(
        f"/teleconsultation/{room_id}",
        json={
            "participants": {"number": 2, "data": [renamed, PATIENT]},
            "start_date": "2030-03-01T10:00:00+01:00",
            "end_date": "2030-03-01T11:00:00+01:00",
        },
    )

    assert response.status == 204
    assert list(fake_video(client).rooms) == [room]
    assert fake_video(client).created_room_count == 1
    _, body = await join(client, room_id, "doctor-1")
    assert body["participantsBandyerCall"][0] == {
        "bandyerUserId": "doctor-1",
        "fullName": "Dr Joe Smith",
    }


async def test_new_dates_replace_a_room_with_a_duration(make_client: MakeClient) -> None:
    client = await make_client(UNLIMITED_TELECONSULTATION="false")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [old_room] = fake_video(client).rooms

    response = await client.patch(
        f"/teleconsultation/{room_id}", json={"duration_in_seconds": 1800}
    )

    assert response.status == 204
    [new_room] = fake_video(client).rooms.values()
    assert new_room.id != old_room
    assert new_room.spec.duration_seconds == 1800


async def test_raising_the_number_drops_the_room_until_everyone_is_known(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))

    response = await client.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 3, "data": [DOCTOR, PATIENT]}},
    )
    assert response.status == 204
    assert fake_video(client).rooms == {}

    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=NURSE)
    assert response.status == 201
    [room] = fake_video(client).rooms.values()
    assert len(room.spec.participants) == 3


async def test_the_link_appears_when_the_immutable_window_opens(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(IMMUTABLE_PERIOD_MS=str(15 * 60 * 1000))
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [room] = fake_video(client).rooms.values()

    status, body = await join(client, room_id, "patient-1")
    assert (status, body["accessLinkURL"]) == (200, None)

    clock.now = clock.now.replace(hour=15, minute=15)  # START minus the 15 minute window
    status, body = await join(client, room_id, "patient-1")
    assert status == 200
    assert body == {
        "bandyerUserId": "patient-1",
        # in the participant's language ("it"), with no virtual background
        "accessLinkURL": f"http://127.0.0.1:3000/fake-video/join/{room.codes['patient-1']}?l=it",
        "participantsBandyerCall": [
            {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
            {"bandyerUserId": "patient-1", "fullName": "Jane Doe"},
        ],
        "details": {
            "recording": "none",
            "recordingStatus": "stopped",
            "callType": "audio_video",
            "status": "pending",
            "disabled": False,
            "creationDate": room.created_at,
            "durationInSeconds": None,
            "durationUsedInSeconds": 0,
            "live": True,
        },
    }
    _, doctor = await join(client, room_id, "doctor-1")
    assert doctor["accessLinkURL"] != body["accessLinkURL"]


LOCK = datetime(2030, 2, 22, 15, 29, tzinfo=UTC)
"""The lock time of the tests' teleconsultations with IMMUTABLE_PERIOD_MS=60000."""
LOCKED = error(
    409,
    "The teleconsultation is locked since 2030-02-22T15:29:00.000Z: all participants are "
    "known and its start is within IMMUTABLE_PERIOD_MS, so its room can no longer change. "
    "Cancel it and create a new one instead.",
    code="locked",
)
NEW_PARTICIPANTS = {"participants": {"number": 2, "data": [DOCTOR, NURSE]}}
"""A change that replaces the room."""


async def test_a_locked_teleconsultation_refuses_changes_but_can_be_cancelled(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(IMMUTABLE_PERIOD_MS="60000")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.now = clock.now.replace(hour=15, minute=29, second=30)

    response = await client.patch(f"/teleconsultation/{room_id}", json={"start_date": START})
    assert (response.status, await response.json()) == (409, LOCKED)

    response = await client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert fake_video(client).rooms == {}


async def test_a_change_that_would_commit_after_the_lock_is_refused_and_undone(
    make_client: MakeClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: a PATCH reads the record 1.5 s before the lock and its provider takes 3 s, so
    its write would come when links to the current room may be out. The lock is part of the
    compare-and-set: refused, and the room the change made is deleted."""
    client = await make_client(IMMUTABLE_PERIOD_MS="60000")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    video = fake_video(client)
    [original] = video.rooms.values()
    before = await stored_document(client, room_id)
    create_room = video.create_room

    async def slow_create_room(spec: RoomSpec) -> CreatedRoom:
        clock.advance(seconds=3)  # the provider answers after the lock
        return await create_room(spec)

    monkeypatch.setattr(video, "create_room", slow_create_room)
    clock.now = LOCK.replace(minute=28, second=58, microsecond=500_000)

    response = await client.patch(f"/teleconsultation/{room_id}", json=NEW_PARTICIPANTS)

    assert (response.status, await response.json()) == (409, LOCKED)
    assert await stored_document(client, room_id) == before
    assert video.created_room_count == 2  # the change made a room, and deleted it
    assert set(video.rooms) == {original.id}
    assert await client.app[SERVICES].store.outbox.job_backlog() == (0, None)
    status, body = await join(client, room_id, "patient-1")
    link = f"http://127.0.0.1:3000/fake-video/join/{original.codes['patient-1']}?l=it"
    assert (status, body["accessLinkURL"]) == (200, link)
    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    assert await client.app[SERVICES].reconciler.run_once() == 0  # nothing left to repair
    assert set(video.rooms) == {original.id}


async def test_a_link_is_handed_out_only_from_a_record_read_after_the_lock(
    make_client: MakeClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GET decides on the time before its read: a record read before the lock may have
    been replaced, before the lock, while the read answered, and its room deleted. Such a
    GET hands out no link; the next one hands out the new room's."""
    client = await make_client(IMMUTABLE_PERIOD_MS="60000")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    records = client.app[SERVICES].store.records
    get = records.get
    overtaken: list[int] = []

    async def read_then_overtaken(teleconsultation_id: str) -> Teleconsultation | None:
        record = await get(teleconsultation_id)
        if not overtaken:  # while the GET's read answers, a PATCH is written, then the lock
            overtaken.append(1)
            response = await client.patch(f"/teleconsultation/{room_id}", json=NEW_PARTICIPANTS)
            assert response.status == 204
            clock.now = LOCK
        return record

    clock.now = LOCK.replace(minute=28, second=59)
    monkeypatch.setattr(records, "get", read_then_overtaken)

    status, body = await join(client, room_id, "doctor-1")
    assert (status, body["accessLinkURL"]) == (200, None)

    [room] = fake_video(client).rooms.values()  # the PATCH's: the first room is gone
    status, body = await join(client, room_id, "doctor-1")
    link = f"http://127.0.0.1:3000/fake-video/join/{room.codes['doctor-1']}?l=it"
    assert (status, body["accessLinkURL"]) == (200, link)


async def test_an_incomplete_teleconsultation_never_locks(
    client: Client, clock: FrozenClock
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR))
    clock.advance(days=1)  # well past the start

    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)

    assert response.status == 201
    _, body = await join(client, room_id, "patient-1")
    assert body["accessLinkURL"] is not None  # complete and past the start: locked, link out


async def test_cancel_deletes_the_room_and_hides_the_record(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))

    response = await client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert fake_video(client).rooms == {}

    for method, suffix, body in [
        ("DELETE", "", None),
        ("PATCH", "", {"start_date": START}),
        ("POST", "/participants/data", NURSE),
    ]:
        response = await client.request(method, f"/teleconsultation/{room_id}{suffix}", json=body)
        assert response.status == 404, method


async def test_the_fake_join_page_shows_the_room(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client()
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)
    _, body = await join(client, room_id, "doctor-1")
    link = body["accessLinkURL"]
    path = link.removeprefix("http://127.0.0.1:3000")

    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = await response.text()
    assert "You are <strong>doctor-1</strong> (room admin)" in page
    assert "<li>patient-1</li>" in page
    assert "Jane Doe" not in page  # the provider knows ids, not names

    response = await client.get("/fake-video/join/not-a-code")
    assert response.status == 404
    assert response.content_type == "text/html"  # a person opened it, not an API client
    assert "<h1>This link is unknown or its room was deleted.</h1>" in await response.text()


async def test_a_new_number_without_data_keeps_the_known_participants(client: Client) -> None:
    room_id = await create(client, teleconsultation(3, DOCTOR, PATIENT))

    response = await client.patch(
        f"/teleconsultation/{room_id}", json={"participants": {"number": 2}}
    )

    assert response.status == 204
    _, body = await join(client, room_id, "doctor-1")
    assert [p["bandyerUserId"] for p in body["participantsBandyerCall"]] == [
        "doctor-1",
        "patient-1",
    ]
    [room] = fake_video(client).rooms.values()  # now complete: the room exists
    assert len(room.spec.participants) == 2

    response = await client.patch(
        f"/teleconsultation/{room_id}", json={"participants": {"number": 1}}
    )
    assert response.status == 400
    response = await client.patch(
        f"/teleconsultation/{room_id}", json={"participants": {"number": 2, "data": []}}
    )
    assert response.status == 204  # an explicit empty list does replace
    assert fake_video(client).rooms == {}
