"""One contract, every store: SQLite, MongoDB on mongomock, and a real MongoDB when
TEST_MONGODB_URL is set (`make test-mongo` starts one with Docker)."""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError

from teleconsult.core.domain import Level, Participant, RecordState, Teleconsultation
from teleconsult.errors import Unavailable
from teleconsult.store import Store, VersionConflict
from teleconsult.store.base import KeyedAnswer, RoomJob
from teleconsult.store.documents import UnreadableRecord, new_object_id
from teleconsult.store.mongo import MongoStore, database_name
from teleconsult.store.sqlite import SQLiteStore

STORES = ["sqlite", "mongomock"] + (["mongodb"] if os.environ.get("TEST_MONGODB_URL") else [])
Opener = Callable[[], Awaitable[Store]]
NOW = datetime(2030, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)  # BSON dates keep milliseconds


@pytest.fixture(params=STORES)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a store on the same database each time it is called (a restart, or a replica)."""
    opened: list[Store] = []
    cleanup: list[Callable[[], Awaitable[None]]] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"

        async def opener() -> Store:
            return await SQLiteStore.open(url, "teleconsultations", "users")

    else:
        if request.param == "mongomock":
            database: Any = AsyncMongoMockClient()["contract"]
        else:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                os.environ["TEST_MONGODB_URL"], tz_aware=True
            )
            name = f"teleconsult_contract_{uuid.uuid4().hex[:12]}"
            database = client[name]

            async def drop() -> None:
                await client.drop_database(name)
                await client.close()

            cleanup.append(drop)

        async def opener() -> Store:
            store = MongoStore(database, "teleconsultations", "users")
            await store.prepare()
            return store

    async def tracked() -> Store:
        store = await opener()
        opened.append(store)
        return store

    yield tracked
    for store in opened:
        await store.close()
    for step in cleanup:
        await step()


def record(**changes: Any) -> Teleconsultation:
    base = Teleconsultation(
        id=new_object_id(),
        participants_number=2,
        participants=(
            Participant("doctor-1", ("doctor",), "Joe Smith", "it", Level.PLUS, "doctor-1"),
        ),
        start_date=NOW + timedelta(days=1),
        end_date=NOW + timedelta(days=1, hours=1),
        room=None,
        state=RecordState.PUBLIC,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        creator_id="creator",
        updater_id="creator",
    )
    return replace(base, **changes)


async def test_a_record_comes_back_as_written(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.insert(original)
    assert await store.get(original.id) == original
    assert await store.get(new_object_id()) is None


async def test_compare_and_set(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.insert(original)

    second = replace(original, version=2, participants_number=3)
    await store.replace(second, expected_version=1)
    assert await store.get(original.id) == second

    with pytest.raises(VersionConflict):
        await store.replace(replace(original, version=2), expected_version=1)
    assert await store.get(original.id) == second


async def test_concurrent_writers_of_one_version_one_wins(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()  # two replicas, one database
    original = record()
    await first.insert(original)

    results = await asyncio.gather(
        *(
            store.replace(replace(original, version=2, participants_number=n), expected_version=1)
            for n, store in [(3, first), (4, second), (5, first), (6, second)]
        ),
        return_exceptions=True,
    )

    assert sum(result is None for result in results) == 1
    assert all(isinstance(r, VersionConflict) for r in results if r is not None)
    stored = await second.get(original.id)
    assert stored is not None
    assert stored.version == 2


async def test_trashed_records_are_invisible_and_final(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.insert(original)
    await store.replace(replace(original, version=2, state=RecordState.TRASH), expected_version=1)

    assert await store.get(original.id) is None
    with pytest.raises(VersionConflict):
        await store.replace(replace(original, version=3), expected_version=2)


async def test_the_first_user_mapping_wins(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    assert await first.find_user("fake", "patient-1") is None

    ids = await asyncio.gather(
        first.add_user("fake", "patient-1", "p-first", "creator"),
        second.add_user("fake", "patient-1", "p-second", "creator"),
    )

    assert ids[0] == ids[1]
    assert await first.find_user("fake", "patient-1") == ids[0]
    assert await first.add_user("other", "patient-1", "p-other", "creator") == "p-other"


async def test_data_survives_a_restart(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.insert(original)
    await store.add_user("fake", "doctor-1", "doctor-1", "creator")
    await store.close()

    reopened = await open_store()
    assert await reopened.get(original.id) == original
    assert await reopened.find_user("fake", "doctor-1") == "doctor-1"


async def test_ping(open_store: Opener) -> None:
    store = await open_store()
    await store.ping()


# -- MongoDB only ------------------------------------------------------------------------------


async def test_starting_twice_creates_no_duplicate_index_and_changes_no_data() -> None:
    database: Any = AsyncMongoMockClient()["twice"]
    first = MongoStore(database, "teleconsultations", "users")
    await first.prepare()
    original = record()
    await first.insert(original)

    second = MongoStore(database, "teleconsultations", "users")
    await second.prepare()

    assert await database["users"].index_information() == {
        "_id_": {"key": [("_id", 1)], "v": 2},
        "provider_providerUserId": {"key": [("provider", 1), ("providerUserId", 1)], "v": 2},
        "provider_receivedUserId_unique": {
            "key": [("provider", 1), ("receivedUserId", 1)],
            "unique": True,
            "v": 2,
        },
    }
    assert sorted(await database["teleconsultations"].index_information()) == [
        "_id_",
        "state_teleconsultationState",
    ]
    assert await second.get(original.id) == original


class Outage:
    """A collection that fails like an unreachable server until `up` is set."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.up = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._collection, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if not self.up:
                raise ServerSelectionTimeoutError("no servers found (injected)")
            return await method(*args, **kwargs)

        return call


class OutageDatabase:
    def __init__(self) -> None:
        self._database: Any = AsyncMongoMockClient()["outage"]
        self.collections: dict[str, Outage] = {}

    def __getitem__(self, name: str) -> Outage:
        return self.collections.setdefault(name, Outage(self._database[name]))

    def come_up(self) -> None:
        for collection in self.collections.values():
            collection.up = True


async def test_a_store_that_starts_down_answers_503_then_recovers() -> None:
    database = OutageDatabase()
    store = MongoStore(database, "teleconsultations", "users")
    await store.prepare()  # does not raise: the service starts anyway

    with pytest.raises(Unavailable) as raised:
        await store.ping()
    assert raised.value.message == (
        "The MongoDB store cannot be reached (ServerSelectionTimeoutError); retry later."
    )
    with pytest.raises(Unavailable):
        await store.insert(record())

    database.come_up()
    await store.ping()
    original = record()
    await store.insert(original)
    assert await store.get(original.id) == original
    indexes = await database["users"].index_information()
    assert "provider_receivedUserId_unique" in indexes


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("mongodb://db:27017/clinic", None, "clinic"),
        ("mongodb://u:p@db1,db2/clinic?replicaSet=rs0", None, "clinic"),
        ("mongodb+srv://cluster.example.net/?retryWrites=true", None, "teleconsult"),
        ("mongodb://db:27017", "override", "override"),
    ],
)
def test_the_database_name(url: str, configured: str | None, expected: str) -> None:
    assert database_name(url, configured) == expected


# pymongo's monitor can drop a socket of a refused connection without closing it; its
# ResourceWarning belongs to this test, not to whichever test the garbage collector meets next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_unreachable_server_is_a_503_quickly() -> None:
    store = MongoStore.connect(
        "mongodb://127.0.0.1:9/", None, "teleconsultations", "users", timeout_ms=200
    )
    try:
        with pytest.raises(Unavailable) as raised:
            await store.ping()
        assert raised.value.message == (
            "The MongoDB store cannot be reached (ServerSelectionTimeoutError); retry later."
        )
    finally:
        await store.close()
        await asyncio.sleep(0.2)  # the monitor's last connection attempt ends
        gc.collect()


async def test_a_record_of_the_original_service_is_refused_clearly() -> None:
    database: Any = AsyncMongoMockClient()["original"]
    store = MongoStore(database, "teleconsultations", "users")
    legacy_id = new_object_id()
    await database["teleconsultations"].insert_one(
        {
            "_id": ObjectId(legacy_id),
            "__STATE__": "PUBLIC",
            "bandyerRoomId": "room_x",
            "participantsNumber": 2,
            "participants": {"number": 2, "data": []},
        }
    )
    with pytest.raises(UnreadableRecord) as raised:
        await store.get(legacy_id)
    assert raised.value.status == 500
    assert raised.value.message == (
        f"The stored teleconsultation {legacy_id} is not in the form this service writes "
        "(it may come from the original service): migrate it as docs/operations.md says."
    )


async def test_idempotency_keys(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    later = NOW + timedelta(minutes=1)
    hour = timedelta(hours=1)

    assert await first.claim_key("POST /t k", "c-1", "fp-1", "a", NOW, NOW + hour) is None
    held = await second.claim_key("POST /t k", "c-1", "fp-1", "b", NOW, NOW + hour)
    assert held == KeyedAnswer(fingerprint="fp-1", status=None, body=None)  # still running

    await first.finish_key("POST /t k", "a", 201, '{"roomId": "x"}', NOW + hour)
    assert await second.claim_key("POST /t k", "c-1", "fp-2", "b", later, later) == KeyedAnswer(
        "fp-1", 201, '{"roomId": "x"}'
    )

    expired = NOW + 2 * hour
    assert await second.claim_key("POST /t k", "c-1", "fp-3", "c", expired, expired + hour) is None
    # The first claim lapsed and was retaken: its late answer and release change nothing.
    await first.finish_key("POST /t k", "a", 500, "late", expired + hour)
    await first.release_key("POST /t k", "a")
    still = await first.claim_key("POST /t k", "c-1", "fp-3", "d", expired, expired + hour)
    assert still == KeyedAnswer("fp-3", None, None)

    await second.release_key("POST /t k", "c")
    assert await first.claim_key("POST /t k", "c-1", "fp-4", "e", expired, expired + hour) is None


async def test_outbox_jobs_are_leased_to_one_replica(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    for n in range(3):
        await first.add_job(
            RoomJob(id=new_object_id(), teleconsultation_id="t", room_id=f"room-{n}",
                    created_at=NOW, not_before=NOW + timedelta(seconds=n))
        )  # fmt: skip
    assert await first.job_backlog() == (3, NOW)
    assert await first.claim_jobs("a", NOW - timedelta(seconds=1), NOW, 10) == []  # not due

    later = NOW + timedelta(seconds=5)
    claims = await asyncio.gather(
        first.claim_jobs("a", later, later + timedelta(minutes=1), 10),
        second.claim_jobs("b", later, later + timedelta(minutes=1), 10),
    )
    rooms = [str(job.room_id) for batch in claims for job in batch]
    assert sorted(rooms) == ["room-0", "room-1", "room-2"]  # each job leased once

    job = claims[0][0] if claims[0] else claims[1][0]
    await first.retry_job(job.id, later + timedelta(seconds=30), "HTTP 500")
    assert await second.claim_jobs("b", later, later, 10) == []  # leased or waiting
    expired = later + timedelta(minutes=2)
    retried = await second.claim_jobs("b", expired, expired + timedelta(minutes=1), 10)
    assert len(retried) == 3  # leases ran out: every job is due again
    again = next(j for j in retried if j.id == job.id)
    assert (again.attempts, again.last_error) == (1, "HTTP 500")

    for leased in retried:
        await second.finish_job(leased.id)
    assert await first.job_backlog() == (0, None)


async def test_a_job_learns_its_room(open_store: Opener) -> None:
    store = await open_store()
    job = RoomJob(new_object_id(), "t", None, NOW, NOW)
    await store.add_job(job)
    await store.set_job_room(job.id, "room-9")
    [claimed] = await store.claim_jobs("a", NOW, NOW + timedelta(minutes=1), 10)
    assert claimed.room_id == "room-9"
