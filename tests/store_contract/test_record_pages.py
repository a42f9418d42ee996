"""Record pages: a participant's (or every) record by start date then id, filtered, from a
position on; the rows that index a participant follow the record's changes."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from teleconsult.core.domain import Level, Participant, Phase, RecordState
from teleconsult.store.base import RecordQuery, RecordWrite
from teleconsult.store.documents import to_document
from teleconsult.store.sqlite import open_sqlite
from teleconsult.store.sqlite.connection import encode
from tests.store_contract.helpers import NOW, Opener, record

PATIENT = Participant("patient-1", ("patient",), "Jane Doe", "it", Level.BASIC, "patient-1")


def at(hours: int) -> dict[str, datetime]:
    start = NOW + timedelta(hours=hours)
    return {"start_date": start, "end_date": start + timedelta(hours=1)}


async def test_pages_by_start_then_id_with_filters(open_store: Opener) -> None:
    records = (await open_store()).records
    early = record(**at(1))
    shared = record(**at(2), participants=(*record().participants, PATIENT))
    twin = record(**at(2))
    trashed = record(**at(3), state=RecordState.TRASH)
    for each in (twin, trashed, early, shared):  # not in order
        await records.insert(RecordWrite(each))
    first, second = sorted((twin.id, shared.id))  # one start: by id

    every = await records.find_page(RecordQuery(limit=10))
    assert [r.id for r in every] == [early.id, first, second, trashed.id]
    assert every[0] == early
    page = await records.find_page(RecordQuery(limit=2, after=(twin.start_date, first)))
    assert [r.id for r in page] == [second, trashed.id]
    patient = await records.find_page(RecordQuery(limit=10, participant="patient-1"))
    assert [r.id for r in patient] == [shared.id]
    window = RecordQuery(
        limit=10,
        participant="doctor-1",
        start_from=NOW + timedelta(hours=2),
        start_before=NOW + timedelta(hours=3),
    )
    assert {r.id for r in await records.find_page(window)} == {twin.id, shared.id}
    cancelled = await records.find_page(RecordQuery(limit=10, phase=Phase.CANCELLED))
    assert [r.id for r in cancelled] == [trashed.id]


async def test_a_change_moves_the_record_in_pages(open_store: Opener) -> None:
    records = (await open_store()).records
    original = record(**at(1))
    await records.insert(RecordWrite(original))
    later = at(5)
    moved = replace(
        original,
        version=2,
        participants=(PATIENT,),
        start_date=later["start_date"],
        end_date=later["end_date"],
    )
    await records.replace(RecordWrite(moved, expected_version=1))
    assert await records.find_page(RecordQuery(limit=10, participant="doctor-1")) == []
    assert await records.find_page(
        RecordQuery(limit=10, participant="patient-1", start_from=NOW + timedelta(hours=5))
    ) == [moved]


async def test_a_file_of_an_older_version_is_indexed_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = record(**at(1))
    with sqlite3.connect(tmp_path / "old.db") as db:  # the 0.2 table: no date columns
        db.execute(
            'CREATE TABLE "teleconsultations" (id TEXT PRIMARY KEY, state TEXT NOT NULL,'
            " version INTEGER NOT NULL, document TEXT NOT NULL)"
        )
        db.execute(
            'INSERT INTO "teleconsultations" VALUES (?, ?, ?, ?)',
            (old.id, "PUBLIC", 1, encode(to_document(old))),
        )
    store = await open_sqlite(url, "teleconsultations", "users")
    try:
        assert await store.records.find_page(RecordQuery(limit=5, participant="doctor-1")) == [old]
    finally:
        await store.health.close()
