"""The user map in MongoDB: a unique index on (provider, receivedUserId); the first insert wins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from teleconsult.errors import Unavailable
from teleconsult.store.documents import user_document
from teleconsult.store.mongo.connection import MongoCollection


class MongoUserMap(MongoCollection):
    async def create_indexes(self, database: Any) -> None:
        await database[self._collection].create_index(
            [("provider", ASCENDING), ("receivedUserId", ASCENDING)],
            unique=True,
            name="provider_receivedUserId_unique",
        )
        await database[self._collection].create_index(
            [("provider", ASCENDING), ("providerUserId", ASCENDING)],
            name="provider_providerUserId",
        )
        await database[self._collection].create_index(
            [("receivedUserId", ASCENDING)], name="receivedUserId"
        )

    async def find_user(self, provider: str, external_id: str) -> str | None:
        document = await self._find({"provider": provider, "receivedUserId": external_id})
        return None if document is None else str(document["providerUserId"])

    async def add_user(
        self, provider: str, external_id: str, provider_user_id: str, creator_id: str
    ) -> str:
        document = user_document(provider, external_id, provider_user_id, creator_id)
        document["_id"] = ObjectId(document["_id"])
        try:
            async with self._database.guard() as database:
                await database[self._collection].insert_one(document)
        except DuplicateKeyError:
            pass  # another request (or replica) mapped this user first: its mapping stands
        stored = await self.find_user(provider, external_id)
        if stored is None:
            raise Unavailable("The MongoDB store lost a user mapping it had just written.")
        return stored

    async def holders(self, provider: str, provider_user_id: str) -> list[str]:
        async with self._database.guard() as database:
            return sorted(
                [
                    str(document["receivedUserId"])
                    async for document in database[self._collection].find(
                        {"provider": provider, "providerUserId": provider_user_id}, limit=2
                    )
                ]
            )

    async def forget(self, external_ids: Sequence[str]) -> int:
        if not external_ids:
            return 0
        async with self._database.guard() as database:
            result = await database[self._collection].delete_many(
                {"receivedUserId": {"$in": list(external_ids)}}
            )
        return int(result.deleted_count)

    async def _find(self, query: dict[str, Any]) -> Any:
        async with self._database.guard() as database:
            return await database[self._collection].find_one(query)
