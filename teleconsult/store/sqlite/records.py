"""Teleconsultation records in SQLite: a JSON document plus the columns the queries need.

A side table (`<records>_participants`) holds one row per (participant, record), keyed
by external id then start date, so a participant's listing reads an index range
whatever the number of records; it is written in the record's own transaction.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

from teleconsult.core.clock import to_micros as micros
from teleconsult.core.domain import RecordState, Teleconsultation
from teleconsult.errors import CutoffPassed, VersionConflict
from teleconsult.store.base import RecordPurge, RecordQuery, RecordWrite
from teleconsult.store.documents import from_document, to_document
from teleconsult.store.sqlite.connection import (
    SQLiteConnection,
    SQLiteTable,
    Statement,
    add_missing_columns,
    chunks,
    encode,
    quoted,
    run_all,
)
from teleconsult.store.sqlite.outbox import SQLiteOutbox
from teleconsult.store.sqlite.webhooks import SQLiteWebhooks

PARSED_DOCUMENTS = 1024
"""How many stored documents' parses a store remembers (`ParsedDocuments`)."""
PARSED_MAX_CHARS = 8192
"""Only texts up to this long are remembered (a record with a few participants is about
2,000 characters): the memory stays bounded, some 30 MiB at the very worst."""


def decoded(document: str) -> Teleconsultation:
    """The record a stored document's text holds."""
    return from_document(json.loads(document))


class ParsedDocuments:
    """`decoded`, remembered by the exact text for the texts reads meet again and again.

    A teleconsultation polled again and unchanged is not parsed again. This is not a cache
    of records: every request still reads its row, and a changed, cancelled or deleted
    record is a different text (or no row) at once, on every replica. The records are
    frozen dataclasses, never changed in place. Each store has its own memory (the records
    hold patients' names), forgotten whenever retention deletes records, so their names and
    links leave it with them."""

    def __init__(self, size: int = PARSED_DOCUMENTS) -> None:
        self._remembered = functools.lru_cache(maxsize=size)(decoded)

    def __call__(self, document: str) -> Teleconsultation:
        return (
            self._remembered(document) if len(document) <= PARSED_MAX_CHARS else decoded(document)
        )

    def __len__(self) -> int:
        """How many parses are remembered now."""
        return self._remembered.cache_info().currsize

    def forget(self) -> None:
        self._remembered.cache_clear()


COLUMNS = (("start_us", "INTEGER"), ("end_us", "INTEGER"), ("updated_us", "INTEGER"))
"""Columns added in 0.3 (listing, retention); older files get them, filled, at start."""


class SQLiteRecords(SQLiteTable):
    """A record, the rows that index it and its webhook deliveries are written in one
    transaction."""

    def __init__(
        self,
        connection: SQLiteConnection,
        table: str,
        webhooks: SQLiteWebhooks,
        outbox: SQLiteOutbox,
    ) -> None:
        super().__init__(connection, table)
        self._webhooks = webhooks
        self._outbox = outbox
        self.parsed = ParsedDocuments()

    @property
    def _participants(self) -> str:
        return quoted(self._name + "_participants")

    async def create_schema(self, db: aiosqlite.Connection) -> None:
        await db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            " id TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL,"
            " document TEXT NOT NULL)"
        )
        await add_missing_columns(db, self._table, COLUMNS)
        await db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._participants} ("
            " external_id TEXT NOT NULL, start_us INTEGER NOT NULL, id TEXT NOT NULL,"
            " PRIMARY KEY (external_id, start_us, id)) WITHOUT ROWID"
        )
        for index, columns in (
            ("_by_start", f"{self._table} (start_us, id)"),
            ("_trashed", f"{self._table} (state, updated_us)"),
            ("_ended", f"{self._table} (state, end_us)"),
            ("_participants_id", f"{self._participants} (id)"),
        ):
            await db.execute(
                f"CREATE INDEX IF NOT EXISTS {quoted(self._name + index)} ON {columns}"
            )
        await db.execute(
            f"CREATE INDEX IF NOT EXISTS {quoted(self._name + '_room')}"
            f" ON {self._table} (json_extract(document, '$.providerRoomId'))"
        )
        await self._fill_new_columns(db)

    async def _fill_new_columns(self, db: aiosqlite.Connection) -> None:
        """Records written before 0.3 get their columns and participant rows, once."""
        cursor = await db.execute(
            f"SELECT document FROM {self._table} WHERE start_us IS NULL"  # an index lookup
        )
        for (document,) in await cursor.fetchall():
            record = decoded(document)
            await db.execute(
                f"UPDATE {self._table} SET start_us = ?, end_us = ?, updated_us = ? WHERE id = ?",
                (*_dates(record), record.id),
            )
            await db.execute(f"DELETE FROM {self._participants} WHERE id = ?", (record.id,))
            await db.executemany(self._insert_participant, _participant_rows(record))

    @property
    def _insert_participant(self) -> str:
        return (
            f"INSERT OR IGNORE INTO {self._participants} (external_id, start_us, id)"
            " VALUES (?, ?, ?)"
        )

    async def insert(self, write: RecordWrite) -> bool:
        t = write.record

        async def insert_row(db: aiosqlite.Connection) -> None:
            await db.execute(
                f"INSERT INTO {self._table} (id, state, version, document, start_us, end_us,"
                " updated_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (t.id, t.state.value, t.version, encode(to_document(t)), *_dates(t)),
            )
            await db.executemany(self._insert_participant, _participant_rows(t))
            await run_all(db, self._along(write))

        await self._connection.transaction(insert_row)
        return write.finished_job is not None

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        row = await self._connection.read_one(
            f"SELECT document FROM {self._table} WHERE id = ? AND state = ?",
            (teleconsultation_id, RecordState.PUBLIC.value),
        )
        return None if row is None else self.parsed(row[0])

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        row = await self._connection.read_one(
            f"SELECT document FROM {self._table} WHERE id = ?", (teleconsultation_id,)
        )
        return None if row is None else self.parsed(row[0])

    async def replace(self, write: RecordWrite) -> bool:
        t, cutoff = write.record, write.cutoff

        async def update_row(db: aiosqlite.Connection) -> int:
            if cutoff is not None and cutoff.passed():  # holding the write lock (Cutoff)
                raise CutoffPassed(t.id)
            cursor = await db.execute(
                f"UPDATE {self._table} SET state = ?, version = ?, document = ?, start_us = ?,"
                " end_us = ?, updated_us = ? WHERE id = ? AND version = ? AND state = ?",
                (
                    t.state.value,
                    t.version,
                    encode(to_document(t)),
                    *_dates(t),
                    t.id,
                    write.expected_version,
                    RecordState.PUBLIC.value,
                ),
            )
            if cursor.rowcount == 1:
                await db.execute(f"DELETE FROM {self._participants} WHERE id = ?", (t.id,))
                await db.executemany(self._insert_participant, _participant_rows(t))
                await run_all(db, self._along(write))
            return cursor.rowcount

        if await self._connection.transaction(update_row) != 1:
            raise VersionConflict(t.id)
        return write.finished_job is not None

    def _along(self, write: RecordWrite) -> list[Statement]:
        """What a record's transaction writes besides it: its deliveries, and the end of the
        outbox job it makes needless (one synced commit fewer for a creation)."""
        statements = list(self._webhooks.put(write.deliveries))
        if write.finished_job is not None:
            statements.append(self._outbox.finished(write.finished_job))
        return statements

    async def find_by_room(self, provider_room_id: str) -> Teleconsultation | None:
        row = await self._connection.read_one(
            f"SELECT document FROM {self._table}"
            " WHERE json_extract(document, '$.providerRoomId') = ? AND state = ?",
            (provider_room_id, RecordState.PUBLIC.value),
        )
        return None if row is None else self.parsed(row[0])

    async def versions(self, teleconsultation_ids: Sequence[str]) -> dict[str, int]:
        if not teleconsultation_ids:
            return {}
        marks = ", ".join("?" * len(teleconsultation_ids))
        rows = await self._connection.read_all(
            f"SELECT id, version FROM {self._table} WHERE id IN ({marks})",
            tuple(teleconsultation_ids),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._connection.read_all(
            "SELECT json_extract(document, '$.teleconsultationState'), count(*)"
            f" FROM {self._table} GROUP BY 1"
        )
        return {str(state): int(count) for state, count in rows}

    async def count_unmigrated(self) -> int:
        """None: the original service never wrote to SQLite."""
        return 0

    async def find_page(self, query: RecordQuery) -> list[Teleconsultation]:
        # One index range: the participant's rows (or every record's) from the cursor on.
        if query.participant is None:
            source, k = f"{self._table} r", "r"
        else:
            source, k = f"{self._participants} k JOIN {self._table} r ON r.id = k.id", "k"
        conditions: list[str] = []
        parameters: list[Any] = []
        if query.participant is not None:
            conditions.append("k.external_id = ?")
            parameters.append(query.participant)
        if query.start_from is not None:
            conditions.append(f"{k}.start_us >= ?")
            parameters.append(micros(query.start_from))
        if query.start_before is not None:
            conditions.append(f"{k}.start_us < ?")
            parameters.append(micros(query.start_before))
        if query.after is not None:
            conditions.append(f"({k}.start_us, {k}.id) > (?, ?)")
            parameters += [micros(query.after[0]), query.after[1]]
        if query.phase is not None:
            conditions.append("json_extract(r.document, '$.teleconsultationState') = ?")
            parameters.append(query.phase.value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._connection.read_all(
            f"SELECT r.document FROM {source}{where} ORDER BY {k}.start_us, {k}.id LIMIT ?",
            (*parameters, query.limit),
        )
        return [self.parsed(row[0]) for row in rows]

    async def purge(self, purge: RecordPurge) -> list[Teleconsultation]:
        async def delete(db: aiosqlite.Connection) -> list[Teleconsultation]:
            # The first `limit` due records, then exactly those: one short transaction.
            cursor = await db.execute(
                f"SELECT id, document FROM {self._table} WHERE state = ? AND updated_us < ?"
                f" UNION ALL SELECT id, document FROM {self._table} WHERE state = ? AND end_us < ?"
                " LIMIT ?",
                (
                    RecordState.TRASH.value,
                    micros(purge.trashed_before),
                    RecordState.PUBLIC.value,
                    micros(purge.ended_before) if purge.ended_before is not None else -1,
                    purge.limit,
                ),
            )
            rows = list(await cursor.fetchall())
            ids = [(row[0],) for row in rows]
            await db.executemany(f"DELETE FROM {self._table} WHERE id = ?", ids)
            await db.executemany(f"DELETE FROM {self._participants} WHERE id = ?", ids)
            purged = [decoded(row[1]) for row in rows]
            jobs = purge.room_jobs(purged)
            await run_all(db, [self._outbox.added(job) for job in jobs])
            return purged

        purged = await self._connection.transaction(delete)
        if purged:
            self.parsed.forget()  # their earlier texts, with names and links, go too
        return purged

    async def in_use(self, external_ids: Sequence[str]) -> set[str]:
        used: set[str] = set()
        for chunk in chunks(external_ids):
            rows = await self._connection.read_all(
                f"SELECT DISTINCT external_id FROM {self._participants}"
                f" WHERE external_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            used.update(str(row[0]) for row in rows)
        return used


def _dates(record: Teleconsultation) -> tuple[int, int, int]:
    return micros(record.start_date), micros(record.end_date), micros(record.updated_at)


def _participant_rows(record: Teleconsultation) -> Iterable[tuple[str, int, str]]:
    start = micros(record.start_date)
    return [(p.external_id, start, record.id) for p in record.participants]
