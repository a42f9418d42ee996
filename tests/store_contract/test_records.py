"""Records: written as given, compare-and-set, trashed ones invisible, kept through a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from teleconsult.core.domain import Attendance, Presence, RecordState, Room, RoomSpec
from teleconsult.errors import CutoffPassed, VersionConflict
from teleconsult.store.base import Cutoff, RecordPurge, RecordWrite, RoomJob
from teleconsult.store.documents import new_object_id, to_document
from teleconsult.store.sqlite import open_sqlite
from teleconsult.store.sqlite import records as sqlite_records
from teleconsult.store.sqlite.connection import encode
from teleconsult.store.sqlite.records import SQLiteRecords
from tests.store_contract.helpers import NOW, Opener, record


async def test_a_record_comes_back_as_written(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.records.insert(RecordWrite(original))
    assert await store.records.get(original.id) == original
    assert await store.records.get(new_object_id()) is None


async def test_compare_and_set(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.records.insert(RecordWrite(original))

    second = replace(original, version=2, participants_number=3)
    await store.records.replace(RecordWrite(second, expected_version=1))
    assert await store.records.get(original.id) == second

    with pytest.raises(VersionConflict):
        await store.records.replace(RecordWrite(replace(original, version=2), expected_version=1))
    assert await store.records.get(original.id) == second


async def test_concurrent_writers_of_one_version_one_wins(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()  # two replicas, one database
    original = record()
    await first.records.insert(RecordWrite(original))

    results = await asyncio.gather(
        *(
            store.records.replace(
                RecordWrite(replace(original, version=2, participants_number=n), expected_version=1)
            )
            for n, store in [(3, first), (4, second), (5, first), (6, second)]
        ),
        return_exceptions=True,
    )

    failed = [result for result in results if isinstance(result, BaseException)]
    assert len(failed) == 3
    assert all(isinstance(error, VersionConflict) for error in failed)
    # The winner's answer: whether it closed an outbox job; none was given.
    assert [result for result in results if not isinstance(result, BaseException)] == [False]
    stored = await second.records.get(original.id)
    assert stored is not None
    assert stored.version == 2


async def test_trashed_records_are_invisible_and_final(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.records.insert(RecordWrite(original))
    trashed = replace(original, version=2, state=RecordState.TRASH)
    await store.records.replace(RecordWrite(trashed, expected_version=1))

    assert await store.records.get(original.id) is None
    assert await store.records.get_any(original.id) == trashed
    with pytest.raises(VersionConflict):
        await store.records.replace(RecordWrite(replace(original, version=3), expected_version=2))


async def test_records_are_counted_by_state(open_store: Opener) -> None:
    store = await open_store()
    await store.records.insert(RecordWrite(record()))
    cancelled = record()
    await store.records.insert(RecordWrite(cancelled))
    await store.records.replace(
        RecordWrite(replace(cancelled, version=2, state=RecordState.TRASH), expected_version=1)
    )
    counts = await store.records.count_by_state()
    assert {state: n for state, n in counts.items() if n} == {
        "waiting_for_participants": 1,
        "cancelled": 1,
    }


async def test_data_survives_a_restart(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.records.insert(RecordWrite(original))
    await store.users.add_users("fake", {"doctor-1": "doctor-1"}, "creator")
    await store.health.close()

    reopened = await open_store()
    assert await reopened.records.get(original.id) == original
    assert await reopened.users.find_user("fake", "doctor-1") == "doctor-1"


async def test_versions_of_many_records_in_one_read(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    live, trashed = record(), record()
    await first.records.insert(RecordWrite(live))
    await first.records.insert(RecordWrite(trashed))
    await first.records.replace(
        RecordWrite(replace(trashed, version=2, state=RecordState.TRASH), 1)
    )
    await first.records.replace(RecordWrite(replace(live, version=2), 1))

    asked = [live.id, trashed.id, new_object_id()]
    assert await second.records.versions(asked) == {live.id: 2, trashed.id: 2}
    assert await second.records.versions([]) == {}


async def test_a_live_record_is_found_by_its_room(open_store: Opener) -> None:
    store = await open_store()
    room = Room(f"room-{new_object_id()}", RoomSpec((), None, False, "none"), {})
    with_room, other = record(room=room), record()
    await store.records.insert(RecordWrite(with_room))
    await store.records.insert(RecordWrite(other))

    assert await store.records.find_by_room(room.provider_room_id) == with_room
    assert await store.records.find_by_room("no-such-room") is None
    await store.records.replace(
        RecordWrite(replace(with_room, version=2, state=RecordState.TRASH), 1)
    )
    assert await store.records.find_by_room(room.provider_room_id) is None


async def test_attendance_comes_back_as_written(open_store: Opener) -> None:
    store = await open_store()
    joined = NOW.replace(microsecond=123000)
    attendance = Attendance(
        call_started_at=joined,
        call_ended_at=None,
        presences=(Presence("doctor-1", joined, joined.replace(minute=(joined.minute + 1) % 60)),),
    )
    original = record(attendance=attendance)
    await store.records.insert(RecordWrite(original))
    assert await store.records.get(original.id) == original


async def test_a_record_write_finishes_the_job_it_makes_needless_where_it_can(
    open_store: Opener,
) -> None:
    """SQLite deletes the job in the record's own transaction (and says so); MongoDB, with
    no write spanning two collections here, leaves it to the caller (and says so). A write
    that loses its compare-and-set finishes nothing."""
    store = await open_store()
    in_one_write = isinstance(store.records, SQLiteRecords)
    original = record()
    creating, replacing = (RoomJob(new_object_id(), original.id, "room-1", NOW, NOW) for _ in "ab")
    await store.outbox.add_job(creating)
    await store.outbox.add_job(replacing)

    assert (
        await store.records.insert(RecordWrite(original, finished_job=creating.id)) is in_one_write
    )
    assert await store.outbox.job_backlog() == ((1, NOW) if in_one_write else (2, NOW))

    with pytest.raises(VersionConflict):
        await store.records.replace(
            RecordWrite(replace(original, version=2), expected_version=5, finished_job=replacing.id)
        )
    second = replace(original, version=2)
    assert (
        await store.records.replace(RecordWrite(second, 1, finished_job=replacing.id))
        is in_one_write
    )
    assert await store.outbox.job_backlog() == ((0, None) if in_one_write else (2, NOW))
    assert await store.records.get(original.id) == second


async def test_a_write_with_a_cutoff_is_refused_from_the_cutoff_on(open_store: Opener) -> None:
    """The lock is part of the compare-and-set: the store reads the clock at the write, and
    from the cutoff on writes nothing (no record, no delivery, no finished job)."""
    store = await open_store()
    original = record()
    await store.records.insert(RecordWrite(original))
    job = RoomJob(new_object_id(), original.id, "room-1", NOW, NOW)
    await store.outbox.add_job(job)
    now = [NOW]
    cutoff = Cutoff(NOW + timedelta(seconds=1), lambda: now[0])

    now[0] = NOW + timedelta(seconds=1)
    with pytest.raises(CutoffPassed):
        await store.records.replace(
            RecordWrite(replace(original, version=2), 1, finished_job=job.id, cutoff=cutoff)
        )
    assert await store.records.get(original.id) == original
    assert await store.outbox.job_backlog() == (1, NOW)

    now[0] = NOW + timedelta(microseconds=999_999)
    second = replace(original, version=2)
    await store.records.replace(RecordWrite(second, 1, cutoff=cutoff))
    assert await store.records.get(original.id) == second


async def test_sqlite_reads_the_cutoffs_clock_holding_the_write_lock(tmp_path: Path) -> None:
    """SQLite reads the clock inside the write's IMMEDIATE transaction: after every write
    before it, however long it waited for the lock, and just before its own."""
    path = tmp_path / "cutoff.db"
    store = await open_sqlite(f"sqlite:///{path}", "teleconsultations", "users")
    original = record()
    await store.records.insert(RecordWrite(original))
    held: list[bool] = []

    def clock() -> datetime:
        with closing(sqlite3.connect(path, timeout=0)) as other:
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("ROLLBACK")
                held.append(False)
            except sqlite3.OperationalError:  # "database is locked": the store holds it
                held.append(True)
        return NOW

    await store.records.replace(
        RecordWrite(
            replace(original, version=2), 1, cutoff=Cutoff(NOW + timedelta(seconds=1), clock)
        )
    )
    await store.health.close()
    assert held == [True]


async def test_sqlite_reads_what_another_process_wrote_and_forgets_purged_texts(
    tmp_path: Path,
) -> None:
    """SQLite remembers parses by the stored text, not records: a change or a cancellation
    written by another process (a replica; here a bare sqlite3 connection) shows at the next
    read, and a purge forgets every remembered text (names and links go with the records)."""
    path = tmp_path / "replicas.db"
    store = await open_sqlite(f"sqlite:///{path}", "teleconsultations", "users")
    original = record()
    await store.records.insert(RecordWrite(original))
    assert await store.records.get(original.id) == original

    changed = replace(original, participants_number=3, version=2)
    with closing(sqlite3.connect(path)) as other, other:
        other.execute(
            'UPDATE "teleconsultations" SET document = ?, version = 2 WHERE id = ?',
            (encode(to_document(changed)), original.id),
        )
    assert await store.records.get(original.id) == changed

    with closing(sqlite3.connect(path)) as other, other:
        other.execute(
            'UPDATE "teleconsultations" SET state = ? WHERE id = ?', ("TRASH", original.id)
        )
    assert await store.records.get(original.id) is None

    assert isinstance(store.records, sqlite_records.SQLiteRecords)
    assert len(store.records.parsed) > 0
    purged = await store.records.purge(
        RecordPurge(NOW + timedelta(days=365), None, 10, now=NOW, rooms_due=NOW)
    )
    assert [gone.id for gone in purged] == [original.id]
    assert len(store.records.parsed) == 0
    await store.health.close()


async def test_each_sqlite_store_remembers_only_its_own_parses(tmp_path: Path) -> None:
    """The parses hold patients' names: one store's memory is never another's."""
    one = await open_sqlite(f"sqlite:///{tmp_path / 'one.db'}", "teleconsultations", "users")
    other = await open_sqlite(f"sqlite:///{tmp_path / 'other.db'}", "teleconsultations", "users")
    original = record()
    await one.records.insert(RecordWrite(original))
    assert await one.records.get(original.id) == original
    assert isinstance(one.records, sqlite_records.SQLiteRecords)
    assert isinstance(other.records, sqlite_records.SQLiteRecords)
    assert len(one.records.parsed) == 1
    assert len(other.records.parsed) == 0
    await one.health.close()
    await other.health.close()
