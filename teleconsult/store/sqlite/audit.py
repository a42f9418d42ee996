"""The audit trail in SQLite: one row per entry, read by teleconsultation in date order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import aiosqlite

from teleconsult.core.clock import from_micros, to_micros
from teleconsult.store.audit import AuditEntry
from teleconsult.store.sqlite.connection import SQLiteTable, TableSchema

TABLE = "teleconsult_audit"
COLUMNS = (
    "id", "teleconsultation_id", "at_us", "action", "actor", "participant", "fields",
    "request_id", "client_address", "user_agent",
)  # fmt: skip


class SQLiteAuditTrail(SQLiteTable):
    NAME = TABLE
    SCHEMA = TableSchema(
        "id TEXT PRIMARY KEY, teleconsultation_id TEXT, at_us INTEGER NOT NULL,"
        " action TEXT NOT NULL, actor TEXT NOT NULL, participant TEXT,"
        " fields TEXT NOT NULL, request_id TEXT NOT NULL, client_address TEXT,"
        " user_agent TEXT",
        {"audit_by_teleconsultation": "teleconsultation_id, at_us, id", "audit_by_date": "at_us"},
    )

    async def append(self, entries: Sequence[tuple[AuditEntry, datetime]]) -> None:
        rows = [
            (
                e.id, e.teleconsultation_id, to_micros(e.at), e.action, e.actor, e.participant,
                json.dumps(list(e.fields)) if e.fields else "[]",  # a hand-out names no fields
                e.request_id, e.client_address, e.user_agent,
            )
            for e, _ in entries
        ]  # fmt: skip

        async def insert(db: aiosqlite.Connection) -> None:
            await db.executemany(
                f"INSERT INTO {self._table} ({', '.join(COLUMNS)})"
                f" VALUES ({', '.join('?' * len(COLUMNS))})",
                rows,
            )

        await self._connection.transaction(insert)

    async def entries(
        self, teleconsultation_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        position = (to_micros(after[0]), after[1]) if after is not None else (-1, "")
        rows = await self._connection.read_all(
            f"SELECT {', '.join(COLUMNS)} FROM {self._table} WHERE teleconsultation_id = ?"
            " AND (at_us, id) > (?, ?) ORDER BY at_us, id LIMIT ?",
            (teleconsultation_id, *position, limit),
        )
        return [
            AuditEntry(
                id=row[0], teleconsultation_id=row[1], at=from_micros(row[2]), action=row[3],
                actor=row[4], participant=row[5], fields=tuple(json.loads(row[6])),
                request_id=row[7], client_address=row[8], user_agent=row[9],
            )
            for row in rows
        ]  # fmt: skip

    async def purge_before(self, cutoff: datetime, limit: int) -> int:
        return await self._connection.write(
            f"DELETE FROM {self._table} WHERE id IN (SELECT id FROM {self._table}"
            " WHERE at_us < ? LIMIT ?)",
            (to_micros(cutoff), limit),
        )
