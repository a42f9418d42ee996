"""Idempotency keys in MongoDB: claimed by one insert, removed by a TTL index (and the purge)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from teleconsult.store.base import KeyClaim, KeyedAnswer
from teleconsult.store.mongo.connection import (
    MongoCollection,
    MongoDatabase,
    delete_first,
    expire_by_date,
)

COLLECTION = "teleconsult_idempotency_keys"


class MongoIdempotencyKeys(MongoCollection):
    def __init__(self, database: MongoDatabase) -> None:
        super().__init__(database, COLLECTION)

    async def create_indexes(self, database: Any) -> None:
        await expire_by_date(database[self._collection])
        await database[self._collection].create_index(
            [("caller", ASCENDING), ("expiresAt", ASCENDING)], name="caller_expiresAt"
        )

    async def claim_key(self, claim: KeyClaim) -> KeyedAnswer | None:
        fresh = {
            "caller": claim.caller,
            "fingerprint": claim.fingerprint,
            "token": claim.token,
            "status": None,
            "body": None,
            "expiresAt": claim.expires_at,
        }
        try:
            async with self._database.guard() as database:
                await database[self._collection].insert_one({"_id": claim.scope, **fresh})
            return None
        except DuplicateKeyError:
            pass
        async with self._database.guard() as database:
            expired = await database[self._collection].update_one(
                {"_id": claim.scope, "expiresAt": {"$lte": claim.now}}, {"$set": fresh}
            )
            if expired.matched_count == 1:
                return None
            held = await database[self._collection].find_one({"_id": claim.scope})
        if held is None:  # expired and removed in between: claim it again
            return await self.claim_key(claim)
        return KeyedAnswer(held["fingerprint"], held["status"], held["body"])

    async def finish_key(
        self, scope: str, token: str, status: int, body: str, expires_at: datetime
    ) -> None:
        async with self._database.guard() as database:
            await database[self._collection].update_one(
                {"_id": scope, "token": token},
                {"$set": {"status": status, "body": body, "expiresAt": expires_at}},
            )

    async def release_key(self, scope: str, token: str) -> None:
        async with self._database.guard() as database:
            await database[self._collection].delete_one({"_id": scope, "token": token})

    async def count_keys(self, caller: str, now: datetime) -> int:
        async with self._database.guard() as database:
            count: int = await database[self._collection].count_documents(
                {"caller": caller, "expiresAt": {"$gt": now}}
            )
        return count

    async def purge_expired_keys(self, now: datetime, limit: int) -> int:
        """The TTL index removes expired keys too; this only makes it prompt."""
        async with self._database.guard() as database:
            return await delete_first(
                database[self._collection], {"expiresAt": {"$lte": now}}, limit
            )
