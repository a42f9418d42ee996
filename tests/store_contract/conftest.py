"""The store under test: SQLite, MongoDB on mongomock, and a real MongoDB when
TEST_MONGODB_URL is set (`make test-mongo` starts one with Docker)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient

from teleconsult.store import Store
from teleconsult.store.mongo import open_mongo
from teleconsult.store.sqlite import open_sqlite
from tests.store_contract.helpers import Opener

STORES = ["sqlite", "mongomock"] + (["mongodb"] if os.environ.get("TEST_MONGODB_URL") else [])


@pytest.fixture(params=STORES)
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a store on the same database each time it is called (a restart, or a replica)."""
    opened: list[Store] = []
    cleanup: list[Callable[[], Awaitable[None]]] = []
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"

        async def opener() -> Store:
            return await open_sqlite(url, "teleconsultations", "users")

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
            return await open_mongo(database, "teleconsultations", "users")

    async def tracked() -> Store:
        store = await opener()
        opened.append(store)
        return store

    yield tracked
    for store in opened:
        await store.health.close()
    for step in cleanup:
        await step()
