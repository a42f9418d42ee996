"""The user map in SQLite: one row per (provider, external id), the first writer wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aiosqlite

from teleconsult.store.documents import user_document
from teleconsult.store.sqlite.connection import SQLiteTable, TableSchema, chunks, encode

HOLDERS = "SELECT external_id FROM {table} WHERE provider = ? AND provider_user_id = ? LIMIT 2"
"""The map read backwards. No ORDER BY: with one, SQLite walks the primary key (provider,
external_id) over every user of the provider to keep the order (O(users): 0.3 ms a read at
1,000 users); without, it searches the (provider, provider_user_id) index. The two rows at
most are sorted in Python."""


class SQLiteUserMap(SQLiteTable):
    SCHEMA = TableSchema(
        "provider TEXT NOT NULL, external_id TEXT NOT NULL,"
        " provider_user_id TEXT NOT NULL, document TEXT NOT NULL,"
        " PRIMARY KEY (provider, external_id)",
        {
            "{table}_provider_user_id": "provider, provider_user_id",
            "{table}_external_id": "external_id",
        },
    )

    async def find_user(self, provider: str, external_id: str) -> str | None:
        row = await self._connection.read_one(
            f"SELECT provider_user_id FROM {self._table} WHERE provider = ? AND external_id = ?",
            (provider, external_id),
        )
        return None if row is None else str(row[0])

    async def add_users(
        self, provider: str, users: Mapping[str, str], creator_id: str
    ) -> dict[str, str]:
        rows = [
            (
                provider,
                external_id,
                user,
                encode(user_document(provider, external_id, user, creator_id)),
            )
            for external_id, user in users.items()
        ]
        external_ids = list(users)

        async def insert_then_read(db: aiosqlite.Connection) -> dict[str, str]:
            await db.executemany(
                f"INSERT INTO {self._table} (provider, external_id, provider_user_id, document)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (provider, external_id) DO NOTHING",
                rows,
            )
            stored: dict[str, str] = {}
            for chunk in chunks(external_ids):
                cursor = await db.execute(
                    f"SELECT external_id, provider_user_id FROM {self._table}"
                    f" WHERE provider = ? AND external_id IN ({', '.join('?' * len(chunk))})",
                    (provider, *chunk),
                )
                stored.update((str(e), str(u)) for e, u in await cursor.fetchall())
            return stored

        if not rows:
            return {}
        # One transaction: the rows are read back before anyone could delete them.
        return await self._connection.transaction(insert_then_read)

    async def holders(self, provider: str, provider_user_id: str) -> list[str]:
        rows = await self._connection.read_few(
            HOLDERS.format(table=self._table), (provider, provider_user_id)
        )
        return sorted(str(row[0]) for row in rows)

    async def forget(self, external_ids: Sequence[str]) -> int:
        forgotten = 0
        for chunk in chunks(external_ids):
            forgotten += await self._connection.write(
                f"DELETE FROM {self._table} WHERE external_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
        return forgotten
