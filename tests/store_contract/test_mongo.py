"""MongoDB only: indexes made once, a server that starts down, the database name, old records,
the errors of a bulk write of user mappings."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from bson import ObjectId
from mongomock_motor import AsyncMongoMockClient
from pymongo.errors import BulkWriteError, ServerSelectionTimeoutError

from teleconsult.errors import Unavailable, UnreadableRecord
from teleconsult.store.base import RecordWrite
from teleconsult.store.documents import new_object_id
from teleconsult.store.mongo import connect_mongo, database_name, open_mongo
from tests.store_contract.helpers import record


async def test_starting_twice_creates_no_duplicate_index_and_changes_no_data() -> None:
    database: Any = AsyncMongoMockClient()["twice"]
    first = await open_mongo(database, "teleconsultations", "users")
    original = record()
    await first.records.insert(RecordWrite(original))

    second = await open_mongo(database, "teleconsultations", "users")

    assert await database["users"].index_information() == {
        "_id_": {"key": [("_id", 1)], "v": 2},
        "provider_providerUserId": {"key": [("provider", 1), ("providerUserId", 1)], "v": 2},
        "provider_receivedUserId_unique": {
            "key": [("provider", 1), ("receivedUserId", 1)],
            "unique": True,
            "v": 2,
        },
        "receivedUserId": {"key": [("receivedUserId", 1)], "v": 2},
    }
    assert sorted(await database["teleconsultations"].index_information()) == [
        "_id_",
        "participant_startDate",
        "providerRoomId",  # provider events find their record by room
        "startDate",
        "state_endDate",
        "state_teleconsultationState",
        "state_updatedAt",
        "version",  # check-up's count of the original's documents (none has one)
        "webhookOutbox",  # sparse: only records with deliveries not yet relayed
    ]
    assert await second.records.get(original.id) == original


class Outage:
    """A collection that fails like an unreachable server until its database comes up."""

    def __init__(self, collection: Any, database: OutageDatabase) -> None:
        self._collection = collection
        self._database = database

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._collection, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if not self._database.up:
                raise ServerSelectionTimeoutError("no servers found (injected)")
            return await method(*args, **kwargs)

        return call


class OutageDatabase:
    def __init__(self) -> None:
        self._database: Any = AsyncMongoMockClient()["outage"]
        self.up = False

    def __getitem__(self, name: str) -> Outage:
        return Outage(self._database[name], self)

    def come_up(self) -> None:
        self.up = True


async def test_a_store_that_starts_down_answers_503_then_recovers() -> None:
    database = OutageDatabase()
    store = await open_mongo(database, "teleconsultations", "users")  # the service starts

    with pytest.raises(Unavailable) as raised:
        await store.health.ping()
    assert raised.value.message == (
        "The MongoDB store cannot be reached (ServerSelectionTimeoutError); retry later."
    )
    with pytest.raises(Unavailable):
        await store.records.insert(RecordWrite(record()))

    database.come_up()
    await store.health.ping()
    original = record()
    await store.records.insert(RecordWrite(original))
    assert await store.records.get(original.id) == original
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


# pymongo leaves the socket of a refused connection unclosed, held by the error it keeps; its
# ResourceWarning belongs to this test, not to whichever test the garbage collector meets next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_unreachable_server_is_a_503_quickly() -> None:
    store = await connect_mongo(
        "mongodb://127.0.0.1:9/", None, "teleconsultations", "users", timeout_ms=200
    )
    with pytest.raises(Unavailable) as raised:
        await store.health.ping()
    assert raised.value.message == (
        "The MongoDB store cannot be reached (ServerSelectionTimeoutError); retry later."
    )
    await store.health.close()
    del store, raised
    gc.collect()


async def test_a_record_of_the_original_service_is_refused_clearly() -> None:
    database: Any = AsyncMongoMockClient()["original"]
    store = await open_mongo(database, "teleconsultations", "users")
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
        await store.records.get(legacy_id)
    assert raised.value.status == 500
    assert raised.value.message == (
        f"The stored teleconsultation {legacy_id} is not in the form this service writes "
        "(it may come from the original service): run `teleconsult migrate` "
        "(docs/operations.md, 'Coming from the original service')."
    )


class FailingWrites:
    """A collection whose insert_many fails, after writing, with the errors given."""

    def __init__(self, collection: Any, details: dict[str, Any]) -> None:
        self._collection = collection
        self._details = details

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def insert_many(self, documents: list[Any], ordered: bool = True) -> None:
        await self._collection.insert_many(documents, ordered=ordered)
        raise BulkWriteError(self._details)


@pytest.mark.parametrize(
    "details",
    [
        {"writeErrors": [{"index": 0, "code": 121, "errmsg": "validation"}]},
        {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "timeout"}]},
    ],
)
async def test_user_mappings_failing_otherwise_than_duplicates_are_a_503(
    details: dict[str, Any],
) -> None:
    """Only a duplicate (a mapping written first elsewhere) is taken as written."""
    database: Any = AsyncMongoMockClient()["users_fail"]
    store = await open_mongo(database, "teleconsultations", "users")
    failing = {"users": FailingWrites(database["users"], details)}
    store.users._database.database = _Swapped(database, failing)  # type: ignore[attr-defined]

    with pytest.raises(Unavailable, match="BulkWriteError"):
        await store.users.add_users("fake", {"patient-1": "p-1"}, "creator")


class _Swapped:
    """A database whose named collections are replaced."""

    def __init__(self, database: Any, collections: dict[str, Any]) -> None:
        self._database = database
        self._collections = collections

    def __getitem__(self, name: str) -> Any:
        return self._collections.get(name) or self._database[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)
