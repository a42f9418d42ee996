"""Concurrent requests lose nothing and leave one room; failures leave nothing half-written."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from teleconsult_fake import FakeVideo

from teleconsult.core.domain import Level, RoomSpec
from teleconsult.errors import ProviderError, ProviderFailure, Unavailable
from teleconsult.plugin import NoSettings
from teleconsult.providers.hookspecs import hookimpl
from teleconsult.providers.protocols import CreatedRoom, ProviderContext, VideoProviderPlugin
from teleconsult.services import SERVICES
from teleconsult.store.base import RoomJob
from teleconsult.store.documents import new_object_id
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    create,
    error,
    fake_video,
    join,
    lose_the_first_race,
    person,
    teleconsultation,
)


class SharedFakeVideo(FakeVideo):
    name = "shared"


class SharedVideo:
    """A plugin offering one provider to every app that selects it: replicas, one provider."""

    def __init__(self) -> None:
        self.provider = SharedFakeVideo("http://video.test")

    @hookimpl
    def register_video_providers(self) -> list[VideoProviderPlugin[NoSettings]]:
        return [VideoProviderPlugin(name="shared", create=self._create, settings=NoSettings)]

    def _create(self, context: ProviderContext[NoSettings]) -> FakeVideo:
        return self.provider


async def test_ten_concurrent_additions_for_two_free_places(client: Client) -> None:
    room_id = await create(client, teleconsultation(3, DOCTOR))
    patients = [person(f"patient-{n}", ["patient"], f"Patient {n}") for n in range(10)]

    responses = await asyncio.gather(
        *(
            client.post(f"/teleconsultation/{room_id}/participants/data", json=patient)
            for patient in patients
        )
    )

    statuses = sorted(response.status for response in responses)
    assert statuses == [201, 201] + [400] * 8
    for response in responses:
        if response.status == 400:
            assert await response.json() == error(
                400,
                "This teleconsultation already has all its 3 participants; "
                "PATCH its participants to change them.",
            )
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert len(record.participants) == 3
    rooms = fake_video(client).rooms
    assert len(rooms) == 1
    assert record.room is not None
    assert record.room.provider_room_id in rooms
    in_room = [p.provider_user_id for p in rooms[record.room.provider_room_id].spec.participants]
    assert in_room == [p.provider_user_id for p in record.participants]


async def test_two_replicas_on_one_database_lose_no_update(make_client: MakeClient) -> None:
    shared = SharedVideo()
    replica_a = await make_client(plugins=[shared], VIDEO_PROVIDER="shared")
    replica_b = await make_client(plugins=[shared], VIDEO_PROVIDER="shared")
    room_id = await create(replica_a, teleconsultation(5, DOCTOR))
    newcomers = [person(f"p{n}", ["patient"], f"P{n}") for n in range(4)]

    responses = await asyncio.gather(
        *(
            (replica_a if n % 2 else replica_b).post(
                f"/teleconsultation/{room_id}/participants/data", json=newcomer
            )
            for n, newcomer in enumerate(newcomers)
        ),
        replica_a.patch(
            f"/teleconsultation/{room_id}", json={"end_date": "2030-02-22T17:00:00.000Z"}
        ),
        replica_b.patch(
            f"/teleconsultation/{room_id}", json={"start_date": "2030-02-22T15:00:00.000Z"}
        ),
    )

    assert [response.status for response in responses] == [201] * 4 + [204, 204], [
        await response.text() for response in responses
    ]
    record = await replica_b.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert sorted(p.external_id for p in record.participants) == [
        "doctor-1",
        "p0",
        "p1",
        "p2",
        "p3",
    ]
    assert record.start_date.isoformat() == "2030-02-22T15:00:00+00:00"
    assert record.end_date.isoformat() == "2030-02-22T17:00:00+00:00"
    assert record.room is not None
    assert list(shared.provider.rooms) == [record.room.provider_room_id]


async def test_a_replica_that_answered_a_poll_keeps_no_copy(make_client: MakeClient) -> None:
    """Every poll reads the record: what another replica changed or cancelled shows at the
    next poll (the SQLite store remembers parses by the stored text, not records)."""
    shared = SharedVideo()
    replica_a = await make_client(plugins=[shared], VIDEO_PROVIDER="shared")
    replica_b = await make_client(plugins=[shared], VIDEO_PROVIDER="shared")
    room_id = await create(replica_a, teleconsultation(2, DOCTOR))
    status, body = await join(replica_a, room_id, "doctor-1")
    assert (status, body["participantsBandyerCall"]) == (
        200,
        [{"bandyerUserId": "doctor-1", "fullName": "Joe Smith"}],
    )

    added = await replica_b.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)
    assert added.status == 201, await added.text()
    status, body = await join(replica_a, room_id, "doctor-1")
    assert (status, body["participantsBandyerCall"]) == (
        200,
        [
            {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
            {"bandyerUserId": "patient-1", "fullName": "Jane Doe"},
        ],
    )

    cancelled = await replica_b.delete(
        f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"}
    )
    assert cancelled.status == 204, await cancelled.text()
    assert await join(replica_a, room_id, "doctor-1") == (
        404,
        error(
            404,
            f"No teleconsultation has the id {room_id!r}: it never existed or was deleted.",
            f"Room with id {room_id} not found on CRUD",
        ),
    )


async def test_data_survives_a_restart(make_client: MakeClient) -> None:
    first = await make_client()
    room_id = await create(first, teleconsultation(2, DOCTOR, PATIENT))
    await first.close()

    second = await make_client()
    status, body = await join(second, room_id, "doctor-1")
    assert status == 200
    assert body["participantsBandyerCall"] == [
        {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
        {"bandyerUserId": "patient-1", "fullName": "Jane Doe"},
    ]
    assert await second.app[SERVICES].store.users.find_user("fake", "patient-1") == "patient-1"


class FailingVideo(FakeVideo):
    """The fake provider, failing the operations a test names."""

    name = "failing"

    def __init__(self) -> None:
        super().__init__("http://video.test")
        self.failures: dict[str, ProviderFailure] = {}

    def _maybe_fail(self, operation: str) -> None:
        kind = self.failures.get(operation)
        if kind is not None:
            raise ProviderError(self.name, operation, kind, "injected by the test")

    async def ensure_user(self, external_id: str, level: Level) -> str:
        self._maybe_fail("create a user")
        return await super().ensure_user(external_id, level)

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        self._maybe_fail("create a room")
        return await super().create_room(spec)

    async def delete_room(self, provider_room_id: str) -> None:
        self._maybe_fail("delete a room")
        await super().delete_room(provider_room_id)


class FailingPlugin:
    def __init__(self) -> None:
        self.provider = FailingVideo()

    @hookimpl
    def register_video_providers(self) -> list[VideoProviderPlugin[NoSettings]]:
        return [
            VideoProviderPlugin(
                name="failing", create=lambda context: self.provider, settings=NoSettings
            )
        ]


@pytest.fixture
def failing() -> FailingPlugin:
    return FailingPlugin()


@pytest.fixture
async def failing_client(make_client: MakeClient, failing: FailingPlugin) -> Client:
    return await make_client(plugins=[failing], VIDEO_PROVIDER="failing")


@pytest.mark.parametrize(
    ("kind", "status"), [("bad_answer", 502), ("unreachable", 503), ("timeout", 504)]
)
async def test_a_failed_room_creation_leaves_the_record_as_it_was(
    failing_client: Client, failing: FailingPlugin, kind: ProviderFailure, status: int
) -> None:
    room_id = await create(failing_client, teleconsultation(2, DOCTOR))
    before = await failing_client.app[SERVICES].store.records.get(room_id)
    failing.provider.failures["create a room"] = kind

    response = await failing_client.post(
        f"/teleconsultation/{room_id}/participants/data", json=PATIENT
    )

    assert response.status == status
    assert await response.json() == error(
        status,
        "The failing provider failed to create a room: injected by the test",
        code={502: "provider_bad_answer", 503: "provider_unavailable", 504: "provider_timeout"}[
            status
        ],
    )
    assert await failing_client.app[SERVICES].store.records.get(room_id) == before
    assert failing.provider.rooms == {}


async def test_a_failed_user_creation_stores_nothing(
    failing_client: Client, failing: FailingPlugin
) -> None:
    failing.provider.failures["create a user"] = "timeout"

    response = await failing_client.post(
        "/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT)
    )

    assert response.status == 504
    assert await response.json() == error(
        504, "The failing provider failed to create a user: injected by the test"
    )
    assert failing.provider.rooms == {}
    store = failing_client.app[SERVICES].store
    assert await store.users.find_user("failing", "doctor-1") is None
    # the room's job, written while the users were being created, is closed again
    assert await store.outbox.job_backlog() == (0, None)


async def test_a_failed_room_deletion_on_cancel_is_retried_until_done(
    failing_client: Client, failing: FailingPlugin, clock: FrozenClock
) -> None:
    room_id = await create(failing_client, teleconsultation(2, DOCTOR, PATIENT))
    failing.provider.failures["delete a room"] = "unreachable"
    reconciler = failing_client.app[SERVICES].reconciler

    response = await failing_client.delete(f"/teleconsultation/{room_id}")

    assert response.status == 204
    assert (await join(failing_client, room_id, "doctor-1"))[0] == 404
    assert len(failing.provider.rooms) == 1
    assert await reconciler.run_once() == 0  # not due yet
    clock.advance(seconds=11)
    assert await reconciler.run_once() == 1  # still failing: tried, put back with backoff
    del failing.provider.failures["delete a room"]
    clock.advance(seconds=21)  # the backoff doubled: 10 s, then 20 s
    assert await reconciler.run_once() == 1
    assert failing.provider.rooms == {}
    assert await reconciler.run_once() == 0


async def test_a_failed_deletion_of_a_replaced_room_does_not_fail_the_change(
    failing_client: Client, failing: FailingPlugin
) -> None:
    room_id = await create(failing_client, teleconsultation(2, DOCTOR, PATIENT))
    failing.provider.failures["delete a room"] = "timeout"

    response = await failing_client.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [DOCTOR, person("n", ["patient"], "N")]}},
    )

    assert response.status == 204
    record = await failing_client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None
    assert record.room.provider_room_id in failing.provider.rooms  # the new room is live
    assert len(failing.provider.rooms) == 2  # the old one is left for reconciliation


async def test_a_room_made_for_a_lost_write_is_deleted(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR))
    store = client.app[SERVICES].store
    calls = lose_the_first_race(store, monkeypatch)

    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)

    assert response.status == 201
    assert calls == [1, 1]
    assert fake_video(client).created_room_count == 2
    record = await store.records.get(room_id)
    assert record is not None
    assert record.room is not None
    assert list(fake_video(client).rooms) == [record.room.provider_room_id]


async def test_a_room_made_for_a_failed_write_is_left_to_the_reconciler(
    client: Client, monkeypatch: pytest.MonkeyPatch, clock: FrozenClock
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR))
    store = client.app[SERVICES].store

    async def unavailable(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("The SQLite store failed: disk I/O error.")

    monkeypatch.setattr(store.records, "replace", unavailable)

    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)

    assert response.status == 503
    assert await response.json() == error(
        503, "The SQLite store failed: disk I/O error.", code="store_unavailable"
    )
    # A failed write may still have happened (an acknowledgement lost on the way back):
    # the room is not deleted blindly; the reconciler looks at the record first.
    assert len(fake_video(client).rooms) == 1
    monkeypatch.undo()
    clock.advance(minutes=3)
    assert await client.app[SERVICES].reconciler.run_once() == 1
    assert fake_video(client).rooms == {}
    record = await store.records.get(room_id)
    assert record is not None
    assert record.room is None


async def test_replicas_racing_adds_patches_and_a_delete_converge(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    shared = SharedVideo()
    replica_a = await make_client(plugins=[shared], VIDEO_PROVIDER="shared")
    replica_b = await make_client(plugins=[shared], VIDEO_PROVIDER="shared")
    room_id = await create(replica_a, teleconsultation(3, DOCTOR, PATIENT))
    path = f"/teleconsultation/{room_id}"

    responses = await asyncio.gather(
        replica_a.post(f"{path}/participants/data", json=person("p1", ["patient"], "P1")),
        replica_b.patch(path, json={"participants": {"number": 2, "data": [DOCTOR, PATIENT]}}),
        replica_a.patch(path, json={"end_date": "2030-02-22T17:00:00.000Z"}),
        replica_b.delete(path),
    )

    assert responses[3].status == 204
    assert all(r.status in (201, 204, 400, 404) for r in responses)
    clock.advance(minutes=3)
    for replica in (replica_a, replica_b):  # both reconcilers run; leases keep them apart
        await replica.app[SERVICES].reconciler.run_once()
    record = await replica_a.app[SERVICES].store.records.get_any(room_id)
    assert record is not None
    assert record.room is None
    assert shared.provider.rooms == {}  # a cancelled teleconsultation keeps no room
    assert await replica_a.app[SERVICES].store.outbox.job_backlog() == (0, None)


async def test_the_reconciler_runs_in_the_background(make_client: MakeClient) -> None:
    failing = FailingPlugin()
    client = await make_client(
        plugins=[failing], VIDEO_PROVIDER="failing", RECONCILE_INTERVAL_MS="20"
    )
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    store = client.app[SERVICES].store
    await store.outbox.add_job(
        RoomJob(new_object_id(), room_id, "fake-room-gone", datetime.now(UTC), datetime.now(UTC))
    )
    for _ in range(100):
        if await store.outbox.job_backlog() == (0, None):
            break
        await asyncio.sleep(0.02)
    assert await store.outbox.job_backlog() == (0, None)
