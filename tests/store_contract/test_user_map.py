"""The user map: one provider user per (provider, external id), the first writer wins."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from teleconsult.store.sqlite import open_sqlite
from teleconsult.store.sqlite.users import HOLDERS
from tests.store_contract.helpers import Opener


async def test_the_first_user_mapping_wins(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    assert await first.users.find_user("fake", "patient-1") is None

    ids = await asyncio.gather(
        first.users.add_users("fake", {"patient-1": "p-first"}, "creator"),
        second.users.add_users("fake", {"patient-1": "p-second"}, "creator"),
    )

    assert ids[0] == ids[1]
    assert ids[0]["patient-1"] in ("p-first", "p-second")
    assert await first.users.find_user("fake", "patient-1") == ids[0]["patient-1"]
    assert await first.users.add_users("other", {"patient-1": "p-other"}, "creator") == {
        "patient-1": "p-other"
    }


async def test_users_are_mapped_together_and_existing_mappings_win(open_store: Opener) -> None:
    """One write for several users; a row another request (or replica) wrote first stands,
    and the others are written beside it."""
    first, second = await open_store(), await open_store()
    assert await second.users.add_users("fake", {"nurse-1": "n-second"}, "creator") == {
        "nurse-1": "n-second"
    }

    stored = await first.users.add_users(
        "fake", {"doctor-1": "d-1", "nurse-1": "n-first", "patient-1": "p-1"}, "creator"
    )

    assert stored == {"doctor-1": "d-1", "nurse-1": "n-second", "patient-1": "p-1"}
    assert await second.users.find_user("fake", "doctor-1") == "d-1"
    assert await second.users.find_user("fake", "nurse-1") == "n-second"
    assert await second.users.holders("fake", "n-first") == []
    assert await first.users.add_users("fake", {}, "creator") == {}


async def test_concurrent_batches_agree_on_every_user(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    people = [f"patient-{i}" for i in range(30)]

    ids = await asyncio.gather(
        first.users.add_users("fake", {p: f"{p}-first" for p in people}, "creator"),
        second.users.add_users("fake", {p: f"{p}-second" for p in reversed(people)}, "creator"),
    )

    assert ids[0] == ids[1]
    assert sorted(ids[0]) == sorted(people)
    for person in people:
        assert await first.users.find_user("fake", person) == ids[0][person]


async def test_the_map_reads_backwards(open_store: Opener) -> None:
    store = await open_store()
    await store.users.add_users("fake", {"patient-1": "p-1"}, "creator")
    assert await store.users.holders("fake", "p-1") == ["patient-1"]
    assert await store.users.holders("other", "p-1") == []
    assert await store.users.holders("fake", "p-2") == []
    # written by an older version: two at most are read
    await store.users.add_users("fake", {"b": "p-9", "a": "p-9", "c": "p-9"}, "creator")
    holders = await store.users.holders("fake", "p-9")
    assert len(holders) == 2
    assert set(holders) <= {"a", "b", "c"}


async def test_sqlite_reads_the_map_backwards_by_its_index(tmp_path: Path) -> None:
    """`holders` searches the (provider, provider_user_id) index: a creation checks every
    participant's provider user, and a walk over all the provider's users grows with them."""
    store = await open_sqlite(f"sqlite:///{tmp_path / 'plan.db'}", "teleconsultations", "users")
    await store.health.close()
    with sqlite3.connect(tmp_path / "plan.db") as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN " + HOLDERS.format(table='"users"'), ("fake", "p-1")
        ).fetchall()
    assert [step[3] for step in plan] == [
        "SEARCH users USING INDEX users_provider_user_id (provider=? AND provider_user_id=?)"
    ]
