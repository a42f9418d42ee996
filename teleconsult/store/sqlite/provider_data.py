"""What providers keep, in SQLite: documents with compare-and-set, and mailboxes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from teleconsult.errors import VersionConflict
from teleconsult.store.documents import new_object_id
from teleconsult.store.provider_data import DocumentWrite, StoredDocument
from teleconsult.store.sqlite.connection import (
    SQLiteConnection,
    SQLiteTable,
    TableSchema,
    encode,
    millis,
    quoted,
)

DOCUMENTS = "teleconsult_provider_documents"
MESSAGES = "teleconsult_provider_messages"
NEVER = 2**62
"""The expiry of what does not expire (epoch milliseconds)."""


class SQLiteProviderData(SQLiteTable):
    NAME = DOCUMENTS
    SCHEMA = TableSchema(
        "namespace TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,"
        " document TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (namespace, key)",
        {"provider_documents_expiry": "expires_at"},
    )
    MESSAGES_SCHEMA = TableSchema(
        "id TEXT PRIMARY KEY, namespace TEXT NOT NULL, recipient TEXT NOT NULL,"
        " message TEXT NOT NULL, expires_at INTEGER NOT NULL",
        {"provider_messages_recipient": "namespace, recipient, id"},
    )

    def __init__(self, connection: SQLiteConnection) -> None:
        super().__init__(connection)
        self._messages = quoted(MESSAGES)

    async def create_schema(self, db: aiosqlite.Connection) -> None:
        await super().create_schema(db)
        await self.MESSAGES_SCHEMA.create(db, MESSAGES)

    async def get_document(self, namespace: str, key: str, now: datetime) -> StoredDocument | None:
        row = await self._connection.read_one(
            f"SELECT key, version, document FROM {self._table}"
            " WHERE namespace = ? AND key = ? AND expires_at > ?",
            (namespace, key, millis(now)),
        )
        return None if row is None else _stored(row)

    async def put_document(self, write: DocumentWrite) -> int:
        expiry = NEVER if write.expires_at is None else millis(write.expires_at)
        version = write.expected_version
        if version is None:
            written = await self._connection.write(
                f"INSERT INTO {self._table} (namespace, key, version, document, expires_at)"
                " VALUES (?, ?, 1, ?, ?) ON CONFLICT (namespace, key) DO NOTHING",
                (write.namespace, write.key, encode(write.document), expiry),
            )
        else:
            written = await self._connection.write(
                f"UPDATE {self._table} SET version = version + 1, document = ?, expires_at = ?"
                " WHERE namespace = ? AND key = ? AND version = ?",
                (encode(write.document), expiry, write.namespace, write.key, version),
            )
        if written != 1:
            raise VersionConflict(write.key)
        return 1 if version is None else version + 1

    async def delete_document(self, namespace: str, key: str) -> None:
        await self._connection.write(
            f"DELETE FROM {self._table} WHERE namespace = ? AND key = ?", (namespace, key)
        )

    async def find_documents(
        self, namespace: str, prefix: str, now: datetime
    ) -> list[StoredDocument]:
        rows = await self._connection.read_all(
            f"SELECT key, version, document FROM {self._table} WHERE namespace = ?"
            " AND substr(key, 1, ?) = ? AND expires_at > ? ORDER BY key",
            (namespace, len(prefix), prefix, millis(now)),
        )
        return [_stored(row) for row in rows]

    async def post(
        self, namespace: str, recipient: str, message: dict[str, Any], expires_at: datetime
    ) -> None:
        await self._connection.write(
            f"INSERT INTO {self._messages} (id, namespace, recipient, message, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (new_object_id(), namespace, recipient, encode(message), millis(expires_at)),
        )

    async def take(self, namespace: str, recipient: str, now: datetime) -> list[dict[str, Any]]:
        taken = await self._take("recipient = ?", (namespace, recipient), now)
        return [message for _, message in taken]

    async def take_for(
        self, namespace: str, recipients: Sequence[str], now: datetime
    ) -> list[tuple[str, dict[str, Any]]]:
        names = (namespace, json.dumps(list(recipients)))
        return await self._take("recipient IN (SELECT value FROM json_each(?))", names, now)

    async def _take(
        self, recipients: str, parameters: tuple[str, ...], now: datetime
    ) -> list[tuple[str, dict[str, Any]]]:
        """Remove the messages of the `recipients` (a condition on the column), exactly those
        read (one posted meanwhile stays for the next take); the unexpired ones, oldest
        first, with their recipient."""
        rows = await self._connection.read_all(
            f"SELECT id, recipient, message, expires_at FROM {self._messages}"
            f" WHERE namespace = ? AND {recipients} ORDER BY id",
            parameters,
        )
        if not rows:
            return []
        taken = [row[0] for row in rows]
        await self._connection.write(
            f"DELETE FROM {self._messages} WHERE id IN ({', '.join('?' * len(taken))})", taken
        )
        return [(row[1], json.loads(row[2])) for row in rows if row[3] > millis(now)]

    async def purge_expired(self, now: datetime, limit: int) -> int:
        purged = 0
        for table, column in ((self._table, "rowid"), (self._messages, "id")):
            purged += await self._connection.write(
                f"DELETE FROM {table} WHERE {column} IN (SELECT {column} FROM {table}"
                " WHERE expires_at <= ? LIMIT ?)",
                (millis(now), limit),
            )
        return purged


def _stored(row: Any) -> StoredDocument:
    return StoredDocument(key=row[0], version=row[1], document=json.loads(row[2]))
