"""The audit trail in MongoDB: one document per entry; a TTL index removes expired ones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from teleconsult.camel import document_record, record_document
from teleconsult.store.audit import AuditEntry
from teleconsult.store.mongo.connection import (
    MongoCollection,
    MongoDatabase,
    delete_first,
    expire_by_date,
)

COLLECTION = "teleconsult_audit"


class MongoAuditTrail(MongoCollection):
    def __init__(self, database: MongoDatabase) -> None:
        super().__init__(database, COLLECTION)

    async def create_indexes(self, database: Any) -> None:
        # Each entry carries its expiry (AUDIT_RETENTION_DAYS when written); the reconciler's
        # purge applies a shortened retention at once.
        await expire_by_date(database[self._collection])
        await database[self._collection].create_index(
            [("teleconsultationId", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)],
            name="teleconsultationId_at",
        )
        await database[self._collection].create_index([("at", ASCENDING)], name="at")

    async def append(self, entries: Sequence[tuple[AuditEntry, datetime]]) -> None:
        documents = [
            {**record_document(entry), "expiresAt": expires_at} for entry, expires_at in entries
        ]
        async with self._database.guard() as database:
            await database[self._collection].insert_many(documents, ordered=False)

    async def entries(
        self, teleconsultation_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        query: dict[str, Any] = {"teleconsultationId": teleconsultation_id}
        if after is not None:
            at, last_id = after
            query["$or"] = [{"at": {"$gt": at}}, {"at": at, "_id": {"$gt": last_id}}]
        async with self._database.guard() as database:
            return [
                _entry(document)
                async for document in database[self._collection].find(
                    query, sort=[("at", ASCENDING), ("_id", ASCENDING)], limit=limit
                )
            ]

    async def purge_before(self, cutoff: datetime, limit: int) -> int:
        async with self._database.guard() as database:
            return await delete_first(database[self._collection], {"at": {"$lt": cutoff}}, limit)


def _entry(document: dict[str, Any]) -> AuditEntry:
    return document_record(AuditEntry, document)
