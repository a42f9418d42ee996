"""A store outage holds no request for long (issue #25, defect 9).

One budget per request covers all its store calls: a request answers 503 within the
store's timeout (MONGODB_TIMEOUT_MS, SQLITE_BUSY_TIMEOUT_MS) however many calls it
makes. Once a MongoDB call found no server, later requests answer 503 with `Retry-After`
without reaching for one (counted in the driver's server-selection log) until a
background ping finds it again. The issue's bound, "the timeout plus a second", is the
one duration asserted; "at once" is shown by what was not called.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient

from teleconsult.configuration.settings import Settings
from teleconsult.store import Store, budget
from teleconsult.store.mongo import open_mongo
from teleconsult.store.mongo.connection import MongoDatabase
from tests.helpers import DOCTOR, PATIENT, MakeClient, create, error, free_port, teleconsultation

HANG = 10
"""Seconds after which a store still refused counts as never found again (the test fails)."""


class ServerSelections:
    """The MongoDB driver's searches for a server, in order ("started", "failed", ...)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="pymongo.serverSelection")
        self._caplog = caplog

    def steps(self) -> list[str]:
        messages = [
            json.loads(record.getMessage())["message"]
            for record in self._caplog.records
            if record.name == "pymongo.serverSelection"
        ]
        return [message.split()[-1] for message in messages if message.startswith("Server ")]

    def started_after_a_failure(self) -> int:
        """Searches started once one had found no server."""
        steps = self.steps()
        return steps[steps.index("failed") :].count("started") if "failed" in steps else 0


class MongoGoesAway:
    """A MongoDB store that answers (mongomock) until `go_away` points it at a real client on
    a closed loopback port, as when the server goes down after the service started."""

    def __init__(self) -> None:
        self.up: Any = AsyncMongoMockClient()["teleconsult"]
        self.unreachable: AsyncMongoClient[dict[str, Any]] | None = None
        self.connection: MongoDatabase | None = None

    async def open(self, settings: Settings) -> Store:
        store = await open_mongo(
            self.up,
            settings.store.teleconsultations_collection,
            settings.store.user_map_collection,
            timeout_ms=settings.store.mongodb_timeout_ms,
        )
        assert isinstance(store.health, MongoDatabase)
        self.connection = store.health
        self.unreachable = AsyncMongoClient(
            f"mongodb://127.0.0.1:{free_port()}/",
            serverSelectionTimeoutMS=settings.store.mongodb_timeout_ms,
            timeoutMS=settings.store.mongodb_timeout_ms,
        )
        return store

    def go_away(self) -> None:
        assert self.connection is not None
        assert self.unreachable is not None
        self.connection.database = self.unreachable["teleconsult"]

    def come_back(self) -> None:
        assert self.connection is not None
        self.connection.database = self.up


@pytest.fixture
async def mongo() -> AsyncIterator[MongoGoesAway]:
    mongo = MongoGoesAway()
    yield mongo
    if mongo.unreachable is not None:
        await mongo.unreachable.close()
    gc.collect()


@pytest.fixture
def store_factory(mongo: MongoGoesAway) -> Callable[[Settings], Awaitable[Store]]:
    """MongoDB for the tests here, whatever TEST_STORE says (the SQLite one sets None)."""
    return mongo.open


DOCTOR_CALLS = {"miauserid": DOCTOR["userExternalId"]}
UNREACHABLE = error(
    503,
    "The MongoDB store cannot be reached (ServerSelectionTimeoutError); retry later.",
    code="store_unavailable",
)


# pymongo leaves the socket of a refused connection unclosed, held by the error it keeps; its
# ResourceWarning belongs to this test, not to whichever test the garbage collector meets next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_unreachable_mongodb_answers_503_within_its_timeout_then_at_once(
    make_client: MakeClient, mongo: MongoGoesAway, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(MONGODB_TIMEOUT_MS="500")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    selections = ServerSelections(caplog)
    mongo.go_away()

    started = time.monotonic()
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 1  # one MONGODB_TIMEOUT_MS, not one per store call
    tried = selections.steps().count("started")  # its calls under way when the first failed
    assert selections.started_after_a_failure() == 0  # its later calls did not try again
    assert (response.status, await response.json()) == (503, UNREACHABLE)
    retry_after = response.headers.get("Retry-After")

    for method, path in [
        ("POST", "/teleconsultation"),
        ("GET", f"/teleconsultation/{room_id}"),
        ("DELETE", f"/teleconsultation/{room_id}"),
    ]:
        body = teleconsultation(2, DOCTOR, PATIENT) if method == "POST" else None
        response = await client.request(method, path, json=body, headers=DOCTOR_CALLS)
        assert selections.steps().count("started") == tried, method  # no server looked for
        assert (response.status, await response.json()) == (503, UNREACHABLE), method
        assert response.headers["Retry-After"] == "1"
    assert retry_after == "1"

    mongo.come_back()
    async with asyncio.timeout(HANG):  # the background ping finds the server again
        while True:
            response = await client.get(f"/teleconsultation/{room_id}", headers=DOCTOR_CALLS)
            if response.status != 503:
                break
            await asyncio.sleep(0.05)
    assert response.status == 200
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 201


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_the_readiness_probe_pings_and_ends_the_refusal(
    make_client: MakeClient, mongo: MongoGoesAway, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(MONGODB_TIMEOUT_MS="500")
    selections = ServerSelections(caplog)
    path = "/teleconsultation/0123456789abcdef01234567"
    mongo.go_away()
    response = await client.get(path, headers=DOCTOR_CALLS)
    assert (response.status, await response.json()) == (503, UNREACHABLE)
    response = await client.get("/-/ready")
    assert (response.status, (await response.json())["status"]) == (503, "KO")
    assert selections.started_after_a_failure() == 1  # /-/ready did look for a server

    mongo.come_back()
    response = await client.get("/-/ready")
    assert (response.status, (await response.json())["status"]) == (200, "OK")
    response = await client.get(path, headers=DOCTOR_CALLS)
    assert response.status == 404  # answered, no longer refused: there is no such record


@pytest.mark.parametrize("store_factory", [None])
async def test_a_locked_sqlite_file_answers_503_within_its_busy_timeout(
    make_client: MakeClient, store_url: str, store_factory: None
) -> None:
    client = await make_client(SQLITE_BUSY_TIMEOUT_MS="500")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    other = sqlite3.connect(Path(store_url.removeprefix("sqlite:///")), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    started = time.monotonic()
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 1  # one SQLITE_BUSY_TIMEOUT_MS, not one per write
    assert response.status == 503
    assert await response.json() == error(
        503,
        "The SQLite store stayed locked by another writer for the request's "
        "SQLITE_BUSY_TIMEOUT_MS; retry later.",
        code="store_unavailable",
    )
    assert response.headers["Retry-After"] == "1"
    response = await client.get(f"/teleconsultation/{room_id}", headers=DOCTOR_CALLS)
    assert response.status == 200  # reads do not wait for the lock

    other.execute("ROLLBACK")
    other.close()
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 201


async def test_a_request_budget_is_spent_by_the_request_task_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(budget, "monotonic", lambda: now[0])

    async def in_a_task_it_starts() -> float:
        with budget.store_call(5.0) as seconds:
            now[0] += 4
        return seconds

    with budget.request_budget():
        with budget.store_call(5.0) as seconds:
            now[0] += 2
        assert seconds == 5.0
        assert await asyncio.create_task(in_a_task_it_starts()) == 5.0  # not charged
        with budget.store_call(5.0) as seconds:
            assert seconds == 3.0  # what the first call left
    with budget.store_call(5.0) as seconds:
        assert seconds == 5.0  # outside a request
