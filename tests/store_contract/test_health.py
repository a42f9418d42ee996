"""Health: a store that answers says so."""

from __future__ import annotations

from tests.store_contract.helpers import Opener


async def test_ping(open_store: Opener) -> None:
    store = await open_store()
    await store.health.ping()
