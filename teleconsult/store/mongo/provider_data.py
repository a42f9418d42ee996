"""What providers keep, in MongoDB: documents with compare-and-set, and mailboxes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from teleconsult.errors import VersionConflict
from teleconsult.store.mongo.connection import (
    MongoCollection,
    MongoDatabase,
    delete_first,
    expire_by_date,
)
from teleconsult.store.provider_data import DocumentWrite, StoredDocument

DOCUMENTS = "teleconsult_provider_documents"
MESSAGES = "teleconsult_provider_messages"
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


class MongoProviderData(MongoCollection):
    def __init__(self, database: MongoDatabase) -> None:
        super().__init__(database, DOCUMENTS)

    async def create_indexes(self, database: Any) -> None:
        for collection in (DOCUMENTS, MESSAGES):
            await expire_by_date(database[collection])
        await database[DOCUMENTS].create_index(
            [("namespace", ASCENDING), ("key", ASCENDING)], unique=True, name="namespace_key"
        )
        await database[MESSAGES].create_index(
            [("namespace", ASCENDING), ("recipient", ASCENDING), ("_id", ASCENDING)],
            name="namespace_recipient",
        )

    async def get_document(self, namespace: str, key: str, now: datetime) -> StoredDocument | None:
        async with self._database.guard() as database:
            found = await database[DOCUMENTS].find_one(
                {"namespace": namespace, "key": key, "expiresAt": {"$gt": now}}
            )
        return None if found is None else _stored(found)

    async def put_document(self, write: DocumentWrite) -> int:
        fields = {"document": write.document, "expiresAt": write.expires_at or NEVER}
        where = {"namespace": write.namespace, "key": write.key}
        if write.expected_version is None:
            try:
                async with self._database.guard() as database:
                    await database[DOCUMENTS].insert_one({**where, "version": 1, **fields})
            except DuplicateKeyError:
                raise VersionConflict(write.key) from None
            return 1
        async with self._database.guard() as database:
            result = await database[DOCUMENTS].update_one(
                {**where, "version": write.expected_version},
                {"$set": {**fields, "version": write.expected_version + 1}},
            )
        if result.matched_count != 1:
            raise VersionConflict(write.key)
        return write.expected_version + 1

    async def delete_document(self, namespace: str, key: str) -> None:
        async with self._database.guard() as database:
            await database[DOCUMENTS].delete_one({"namespace": namespace, "key": key})

    async def find_documents(
        self, namespace: str, prefix: str, now: datetime
    ) -> list[StoredDocument]:
        # A range of keys rather than a regex: a prefix is never a pattern, and the index serves.
        keys = {"$gte": prefix, "$lt": prefix + "\U0010ffff"}
        async with self._database.guard() as database:
            return [
                _stored(document)
                async for document in database[DOCUMENTS].find(
                    {"namespace": namespace, "key": keys, "expiresAt": {"$gt": now}},
                    sort=[("key", ASCENDING)],
                )
            ]

    async def post(
        self, namespace: str, recipient: str, message: dict[str, Any], expires_at: datetime
    ) -> None:
        async with self._database.guard() as database:
            await database[MESSAGES].insert_one(
                {
                    "_id": ObjectId(),
                    "namespace": namespace,
                    "recipient": recipient,
                    "message": message,
                    "expiresAt": expires_at,
                }
            )

    async def take(self, namespace: str, recipient: str, now: datetime) -> list[dict[str, Any]]:
        taken = await self._take({"namespace": namespace, "recipient": recipient}, now)
        return [message for _, message in taken]

    async def take_for(
        self, namespace: str, recipients: Sequence[str], now: datetime
    ) -> list[tuple[str, dict[str, Any]]]:
        names = {"$in": list(recipients)}
        return await self._take({"namespace": namespace, "recipient": names}, now)

    async def _take(self, where: dict[str, Any], now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """Remove the messages `where` matches, exactly those read (one posted meanwhile
        stays for the next take); the unexpired ones, oldest first, with their recipient."""
        async with self._database.guard() as database:
            found = [
                document
                async for document in database[MESSAGES].find(where, sort=[("_id", ASCENDING)])
            ]
            if found:
                await database[MESSAGES].delete_many(
                    {"_id": {"$in": [document["_id"] for document in found]}}
                )
        return [
            (str(document["recipient"]), dict(document["message"]))
            for document in found
            if _aware(document["expiresAt"]) > now
        ]

    async def purge_expired(self, now: datetime, limit: int) -> int:
        """The TTL indexes remove expired entries too; this only makes it prompt."""
        purged = 0
        async with self._database.guard() as database:
            for collection in (DOCUMENTS, MESSAGES):
                purged += await delete_first(
                    database[collection], {"expiresAt": {"$lte": now}}, limit
                )
        return purged


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _stored(found: dict[str, Any]) -> StoredDocument:
    return StoredDocument(key=found["key"], version=found["version"], document=found["document"])
