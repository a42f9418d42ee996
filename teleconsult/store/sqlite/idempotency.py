"""Idempotency keys in SQLite: claimed by one conditional insert, purged in bounded batches."""

from __future__ import annotations

from datetime import datetime

from teleconsult.store.base import KeyClaim, KeyedAnswer
from teleconsult.store.sqlite.connection import SQLiteTable, TableSchema, millis

TABLE = "teleconsult_idempotency_keys"


class SQLiteIdempotencyKeys(SQLiteTable):
    NAME = TABLE
    SCHEMA = TableSchema(
        "scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, token TEXT NOT NULL,"
        " status INTEGER, body TEXT, expires_at INTEGER NOT NULL, caller TEXT",
        {"keys_by_caller": "caller, expires_at", "keys_by_expiry": "expires_at"},
        added=[("caller", "TEXT")],  # files before 0.2
    )

    async def claim_key(self, claim: KeyClaim) -> KeyedAnswer | None:
        claimed = await self._connection.write(
            f"INSERT INTO {self._table} (scope, caller, fingerprint, token, status, body,"
            " expires_at) VALUES (?, ?, ?, ?, NULL, NULL, ?) ON CONFLICT (scope) DO UPDATE SET"
            " caller = excluded.caller, fingerprint = excluded.fingerprint,"
            " token = excluded.token, status = NULL, body = NULL,"
            f" expires_at = excluded.expires_at WHERE {self._table}.expires_at <= ?",
            (
                claim.scope,
                claim.caller,
                claim.fingerprint,
                claim.token,
                millis(claim.expires_at),
                millis(claim.now),
            ),
        )
        if claimed:
            return None
        row = await self._connection.read_one(
            f"SELECT fingerprint, status, body FROM {self._table} WHERE scope = ?", (claim.scope,)
        )
        if row is None:  # expired and removed in between: claim it again
            return await self.claim_key(claim)
        return KeyedAnswer(fingerprint=row[0], status=row[1], body=row[2])

    async def finish_key(
        self, scope: str, token: str, status: int, body: str, expires_at: datetime
    ) -> None:
        await self._connection.write(
            f"UPDATE {self._table} SET status = ?, body = ?, expires_at = ?"
            " WHERE scope = ? AND token = ?",
            (status, body, millis(expires_at), scope, token),
        )

    async def release_key(self, scope: str, token: str) -> None:
        await self._connection.write(
            f"DELETE FROM {self._table} WHERE scope = ? AND token = ?", (scope, token)
        )

    async def count_keys(self, caller: str, now: datetime) -> int:
        rows = await self._connection.read_all(
            f"SELECT count(*) FROM {self._table} WHERE caller = ? AND expires_at > ?",
            (caller, millis(now)),
        )
        return int(rows[0][0]) if rows else 0

    async def purge_expired_keys(self, now: datetime, limit: int) -> int:
        return await self._connection.write(
            f"DELETE FROM {self._table} WHERE scope IN (SELECT scope FROM {self._table}"
            " WHERE expires_at <= ? LIMIT ?)",
            (millis(now), limit),
        )
