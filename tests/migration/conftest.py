"""The migration's tests run on a MongoDB database of their own (mongomock), whatever
TEST_STORE says: the original's data lives in MongoDB only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

from teleconsult.configuration.settings import Settings
from teleconsult.store.base import Store
from teleconsult.store.mongo import open_mongo


@pytest.fixture
def database() -> Any:
    return AsyncMongoMockClient(tz_aware=True)["original"]


@pytest.fixture
async def store_factory(database: Any) -> Callable[[Settings], Awaitable[Store]]:
    """Every app of these tests on the original's database (conftest's is TEST_STORE's)."""

    async def factory(settings: Settings) -> Store:
        return await open_mongo(
            database,
            settings.store.teleconsultations_collection,
            settings.store.user_map_collection,
            timeout_ms=2000,
        )

    return factory
