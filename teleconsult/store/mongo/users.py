"""The user map in MongoDB: a unique index on (provider, receivedUserId); the first insert wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import BulkWriteError

from teleconsult.errors import Unavailable
from teleconsult.store.documents import user_document
from teleconsult.store.mongo.connection import MongoCollection

DUPLICATE_KEY = 11000
"""MongoDB's error code for a write refused by a unique index."""


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

    async def add_users(
        self, provider: str, users: Mapping[str, str], creator_id: str
    ) -> dict[str, str]:
        if not users:
            return {}
        documents = []
        for external_id, user in users.items():
            document = user_document(provider, external_id, user, creator_id)
            document["_id"] = ObjectId(document["_id"])
            documents.append(document)
        query = {"provider": provider, "receivedUserId": {"$in": list(users)}}
        async with self._database.guard() as database:
            collection = database[self._collection]
            try:
                await collection.insert_many(documents, ordered=False)  # one round trip
            except BulkWriteError as error:
                # Duplicates: another request (or replica) mapped these users first, and its
                # mappings stand. Anything else (a write concern error too) fails the call:
                # the guard makes it a 503.
                details = error.details
                if details.get("writeConcernErrors") or any(
                    e.get("code") != DUPLICATE_KEY for e in details.get("writeErrors", ())
                ):
                    raise
            stored = {
                str(document["receivedUserId"]): str(document["providerUserId"])
                async for document in collection.find(query)
            }
        if len(stored) != len(users):  # only if someone deleted a mapping in between
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
