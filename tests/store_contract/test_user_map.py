"""The user map: one provider user per (provider, external id), the first writer wins."""

from __future__ import annotations

import asyncio

from tests.store_contract.helpers import Opener


async def test_the_first_user_mapping_wins(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    assert await first.users.find_user("fake", "patient-1") is None

    ids = await asyncio.gather(
        first.users.add_user("fake", "patient-1", "p-first", "creator"),
        second.users.add_user("fake", "patient-1", "p-second", "creator"),
    )

    assert ids[0] == ids[1]
    assert await first.users.find_user("fake", "patient-1") == ids[0]
    assert await first.users.add_user("other", "patient-1", "p-other", "creator") == "p-other"


async def test_the_map_reads_backwards(open_store: Opener) -> None:
    store = await open_store()
    await store.users.add_user("fake", "patient-1", "p-1", "creator")
    assert await store.users.holders("fake", "p-1") == ["patient-1"]
    assert await store.users.holders("other", "p-1") == []
    assert await store.users.holders("fake", "p-2") == []
    for shared in ("b", "a", "c"):  # written by an older version: two at most are read
        await store.users.add_user("fake", shared, "p-9", "creator")
    holders = await store.users.holders("fake", "p-9")
    assert len(holders) == 2
    assert set(holders) <= {"a", "b", "c"}
