"""Named leases in SQLite: taken by one conditional upsert, so one process wins."""

from __future__ import annotations

from datetime import datetime

from teleconsult.core.clock import to_micros
from teleconsult.store.sqlite.connection import SQLiteTable, TableSchema

TABLE = "teleconsult_leases"


class SQLiteLeases(SQLiteTable):
    NAME = TABLE
    SCHEMA = TableSchema("name TEXT PRIMARY KEY, owner TEXT NOT NULL, until_us INTEGER NOT NULL")

    async def take(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        taken = await self._connection.write(
            f"INSERT INTO {self._table} (name, owner, until_us) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
            f" until_us = excluded.until_us WHERE {self._table}.until_us <= ?"
            f" OR {self._table}.owner = excluded.owner",
            (name, owner, to_micros(until), to_micros(now)),
        )
        return taken == 1
