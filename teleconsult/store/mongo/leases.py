"""Named leases in MongoDB: taken by one insert or one conditional update, so one replica wins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from teleconsult.store.mongo.connection import MongoCollection, MongoDatabase

COLLECTION = "teleconsult_leases"


class MongoLeases(MongoCollection):
    def __init__(self, database: MongoDatabase) -> None:
        super().__init__(database, COLLECTION)

    async def create_indexes(self, database: Any) -> None:
        """None beyond `_id`, the lease's name."""

    async def take(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        try:
            async with self._database.guard() as database:
                await database[self._collection].insert_one(
                    {"_id": name, "owner": owner, "until": until}
                )
            return True
        except DuplicateKeyError:
            pass
        async with self._database.guard() as database:
            result = await database[self._collection].update_one(
                {"_id": name, "$or": [{"until": {"$lte": now}}, {"owner": owner}]},
                {"$set": {"owner": owner, "until": until}},
            )
        return bool(result.matched_count == 1)
