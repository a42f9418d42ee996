"""Idempotency keys: claimed once, answered, lapsed and retaken, counted per caller, purged."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from teleconsult.store.base import KeyClaim, KeyedAnswer
from teleconsult.store.sqlite import open_sqlite
from tests.store_contract.helpers import NOW, Opener

HOUR = timedelta(hours=1)


def claim(fingerprint: str, token: str, now: datetime, expires_at: datetime) -> KeyClaim:
    """Caller c-1's claim on the key these tests share."""
    return KeyClaim("POST /t k", "c-1", fingerprint, token, now, expires_at)


async def test_idempotency_keys(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    keys_a, keys_b = first.idempotency, second.idempotency
    later = NOW + timedelta(minutes=1)

    assert await keys_a.claim_key(claim("fp-1", "a", NOW, NOW + HOUR)) is None
    held = await keys_b.claim_key(claim("fp-1", "b", NOW, NOW + HOUR))
    assert held == KeyedAnswer(fingerprint="fp-1", status=None, body=None)  # still running

    await keys_a.finish_key("POST /t k", "a", 201, '{"roomId": "x"}', NOW + HOUR)
    assert await keys_b.claim_key(claim("fp-2", "b", later, later)) == KeyedAnswer(
        "fp-1", 201, '{"roomId": "x"}'
    )

    expired = NOW + 2 * HOUR
    assert await keys_b.claim_key(claim("fp-3", "c", expired, expired + HOUR)) is None
    # The first claim lapsed and was retaken: its late answer and release change nothing.
    await keys_a.finish_key("POST /t k", "a", 500, "late", expired + HOUR)
    await keys_a.release_key("POST /t k", "a")
    still = await keys_a.claim_key(claim("fp-3", "d", expired, expired + HOUR))
    assert still == KeyedAnswer("fp-3", None, None)

    await keys_b.release_key("POST /t k", "c")
    assert await keys_a.claim_key(claim("fp-4", "e", expired, expired + HOUR)) is None


async def test_keys_are_counted_per_caller_and_purged_in_batches(open_store: Opener) -> None:
    keys = (await open_store()).idempotency
    for n in range(5):
        await keys.claim_key(
            KeyClaim(f"k-{n}", "c-1", "fp", "t", NOW, NOW + timedelta(minutes=n + 1))
        )
    await keys.claim_key(KeyClaim("other", "c-2", "fp", "t", NOW, NOW + HOUR))
    assert await keys.count_keys("c-1", NOW) == 5
    assert await keys.count_keys("c-1", NOW + timedelta(minutes=3)) == 2

    purged_at = NOW + timedelta(minutes=4)
    assert await keys.purge_expired_keys(purged_at, 3) == 3
    assert await keys.purge_expired_keys(purged_at, 3) == 1
    assert await keys.purge_expired_keys(purged_at, 3) == 0
    assert await keys.count_keys("c-1", NOW) == 1
    assert await keys.count_keys("c-2", NOW) == 1


async def test_a_file_of_version_0_1_gets_the_caller_column_and_its_index(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "old.db") as db:  # the 0.1 table: keys had no caller
        db.execute(
            'CREATE TABLE "teleconsult_idempotency_keys" (scope TEXT PRIMARY KEY,'
            " fingerprint TEXT NOT NULL, token TEXT NOT NULL, status INTEGER, body TEXT,"
            " expires_at INTEGER NOT NULL)"
        )
    store = await open_sqlite(f"sqlite:///{tmp_path / 'old.db'}", "teleconsultations", "users")
    try:
        assert await store.idempotency.claim_key(claim("fp-1", "a", NOW, NOW + HOUR)) is None
        assert await store.idempotency.count_keys("c-1", NOW) == 1
    finally:
        await store.health.close()
    with sqlite3.connect(tmp_path / "old.db") as db:
        indexes = {
            row[1] for row in db.execute('PRAGMA index_list("teleconsult_idempotency_keys")')
        }
    assert {"keys_by_caller", "keys_by_expiry"} <= indexes
