"""Teleconsultation records in SQLite: a JSON document plus the columns the queries need."""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiosqlite

from teleconsult.core.domain import RecordState, Teleconsultation
from teleconsult.errors import VersionConflict
from teleconsult.store.base import Delivery
from teleconsult.store.documents import from_document, to_document
from teleconsult.store.sqlite.connection import SQLiteConnection, SQLiteTable, encode, quoted
from teleconsult.store.sqlite.webhooks import SQLiteWebhooks


class SQLiteRecords(SQLiteTable):
    """A record and its webhook deliveries are written in one transaction."""

    def __init__(self, connection: SQLiteConnection, table: str, webhooks: SQLiteWebhooks) -> None:
        super().__init__(connection, table)
        self._webhooks = webhooks

    async def create_schema(self, db: aiosqlite.Connection) -> None:
        await db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            " id TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL,"
            " document TEXT NOT NULL)"
        )
        await db.execute(
            f"CREATE INDEX IF NOT EXISTS {quoted(self._name + '_room')}"
            f" ON {self._table} (json_extract(document, '$.providerRoomId'))"
        )

    async def insert(
        self, teleconsultation: Teleconsultation, deliveries: Sequence[Delivery] = ()
    ) -> None:
        insert = (
            f"INSERT INTO {self._table} (id, state, version, document) VALUES (?, ?, ?, ?)",
            (
                teleconsultation.id,
                teleconsultation.state.value,
                teleconsultation.version,
                encode(to_document(teleconsultation)),
            ),
        )
        await self._connection.write_together([insert, *self._webhooks.put(deliveries)])

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        row = await self._connection.read_one(
            f"SELECT document FROM {self._table} WHERE id = ? AND state = ?",
            (teleconsultation_id, RecordState.PUBLIC.value),
        )
        return None if row is None else from_document(json.loads(row[0]))

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        row = await self._connection.read_one(
            f"SELECT document FROM {self._table} WHERE id = ?", (teleconsultation_id,)
        )
        return None if row is None else from_document(json.loads(row[0]))

    async def replace(
        self,
        teleconsultation: Teleconsultation,
        expected_version: int,
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        update = (
            f"UPDATE {self._table} SET state = ?, version = ?, document = ?"
            " WHERE id = ? AND version = ? AND state = ?",
            (
                teleconsultation.state.value,
                teleconsultation.version,
                encode(to_document(teleconsultation)),
                teleconsultation.id,
                expected_version,
                RecordState.PUBLIC.value,
            ),
        )
        changed = await self._connection.write_together([update, *self._webhooks.put(deliveries)])
        if changed != 1:
            raise VersionConflict(teleconsultation.id)

    async def find_by_room(self, provider_room_id: str) -> Teleconsultation | None:
        row = await self._connection.read_one(
            f"SELECT document FROM {self._table}"
            " WHERE json_extract(document, '$.providerRoomId') = ? AND state = ?",
            (provider_room_id, RecordState.PUBLIC.value),
        )
        return None if row is None else from_document(json.loads(row[0]))

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
