"""Webhook deliveries in MongoDB, with no transaction: written into the record's own document
by the change's single-document write, then relayed into their collection.

A change pushes its deliveries onto the record's `webhookOutbox` array in the
same `update_one` (or `insert_one`) that writes the record, so they are written
exactly when the change is. Any replica's `relay` then writes them into the
deliveries collection (insert if absent; a newer version replaces a pending or
dropped one) and pulls them from the record. A relay repeated after a crash
rewrites nothing: the stored version is not older. Deliveries are leased by one
`find_one_and_update` each.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from teleconsult.camel import document_record, record_document
from teleconsult.store.base import Delivery, DeliveryStatus
from teleconsult.store.delivery_outcomes import FinishedDeliveries, Outcome
from teleconsult.store.documents import as_datetime
from teleconsult.store.mongo.connection import (
    UNLEASED,
    MongoCollection,
    MongoDatabase,
    failed_attempt,
)

DELIVERIES = "teleconsult_webhook_deliveries"
ENDPOINTS = "teleconsult_webhook_endpoints"
OUTBOX_FIELD = "webhookOutbox"
"""The record document's array of deliveries not yet relayed."""
PENDING = DeliveryStatus.PENDING.value
REWRITABLE = [PENDING, DeliveryStatus.DROPPED.value]


class MongoWebhooks(FinishedDeliveries, MongoCollection):
    def __init__(self, database: MongoDatabase, records: str) -> None:
        super().__init__(database, DELIVERIES)
        self._records = records

    async def create_indexes(self, database: Any) -> None:
        deliveries = database[DELIVERIES]
        await deliveries.create_index([("status", ASCENDING), ("nextAt", ASCENDING)], name="due")
        await deliveries.create_index(
            [
                ("endpoint", ASCENDING),
                ("teleconsultationId", ASCENDING),
                ("status", ASCENDING),
                ("dueAt", ASCENDING),
                ("seq", ASCENDING),
            ],
            name="queue",
        )
        await deliveries.create_index(
            [("status", ASCENDING), ("finishedAt", ASCENDING)], name="finished"
        )
        await database[self._records].create_index(
            [(OUTBOX_FIELD, ASCENDING)], sparse=True, name=OUTBOX_FIELD
        )

    async def relay(self, limit: int) -> int:
        async with self._database.guard() as database:
            records = database[self._records]
            found = [
                document
                async for document in records.find(
                    {OUTBOX_FIELD: {"$exists": True}},
                    projection={OUTBOX_FIELD: True},
                    limit=limit,
                )
            ]
            for document in found:
                entries = document[OUTBOX_FIELD]
                for entry in entries:
                    await self._put(database, entry)
                # By entry key (id and version): a newer write of the same id stays to relay.
                keys = [entry["entryKey"] for entry in entries]
                await records.update_one(
                    {"_id": document["_id"]},
                    {"$pull": {OUTBOX_FIELD: {"entryKey": {"$in": keys}}}},
                )
                await records.update_one(
                    {"_id": document["_id"], OUTBOX_FIELD: {"$size": 0}},
                    {"$unset": {OUTBOX_FIELD: ""}},
                )
        return len(found)

    async def _put(self, database: Any, entry: dict[str, Any]) -> None:
        fields = {key: value for key, value in entry.items() if key != "entryKey"}
        rewritten = await database[DELIVERIES].update_one(
            {
                "_id": fields["_id"],
                "version": {"$lt": fields["version"]},
                "status": {"$in": REWRITABLE},
            },
            {"$set": {k: v for k, v in fields.items() if k != "_id"}},
        )
        if rewritten.matched_count:
            return
        # A DuplicateKeyError: written before (this relay repeated), or a newer version is there.
        with contextlib.suppress(DuplicateKeyError):
            await database[DELIVERIES].insert_one({**fields, **UNLEASED})

    async def claim(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        claimed: list[Delivery] = []
        queues: set[tuple[str, str]] = set()
        async with self._database.guard() as database:
            deliveries = database[DELIVERIES]
            candidates = deliveries.find(
                {"status": PENDING, "nextAt": {"$lte": now}, "leaseUntil": {"$lte": now}},
                sort=[("nextAt", ASCENDING)],
                limit=limit * 4,
            )
            async for candidate in candidates:
                queue = (candidate["endpoint"], candidate["teleconsultationId"])
                if queue in queues or len(claimed) == limit:
                    continue
                queues.add(queue)
                # The queue's head, whichever candidate led here: a head retried later than
                # newer events sorts after them, and must not be passed over for good.
                head = await deliveries.find_one(
                    {"endpoint": queue[0], "teleconsultationId": queue[1], "status": PENDING},
                    sort=[("dueAt", ASCENDING), ("seq", ASCENDING)],
                    projection={"_id": True},
                )
                if head is None:
                    continue
                won = await deliveries.find_one_and_update(  # a lease is won or not
                    {
                        "_id": head["_id"],
                        "status": PENDING,
                        "nextAt": {"$lte": now},
                        "leaseUntil": {"$lte": now},
                    },
                    {"$set": {"leaseUntil": lease_until, "leaseOwner": owner}},
                    return_document=ReturnDocument.AFTER,
                )
                if won is not None:
                    claimed.append(_delivery(won))
        return claimed

    async def retry_later(
        self, delivery_id: str, owner: str, version: int, next_at: datetime, error: str
    ) -> bool:
        async with self._database.guard() as database:
            deliveries = database[DELIVERIES]
            retried = await deliveries.find_one_and_update(
                _leased(delivery_id, owner, version), failed_attempt("nextAt", next_at, error)
            )
            if retried is None:
                return False
            # The queue behind it waits as long: claims skip it meanwhile.
            await deliveries.update_many(
                {
                    "endpoint": retried["endpoint"],
                    "teleconsultationId": retried["teleconsultationId"],
                    "status": PENDING,
                    "_id": {"$ne": delivery_id},
                },
                {"$max": {"nextAt": next_at}},
            )
        return True

    async def _finish(self, delivery_id: str, owner: str, version: int, outcome: Outcome) -> bool:
        update: dict[str, Any] = {
            "$set": {
                "status": outcome.status.value,
                "finishedAt": outcome.at,
                **UNLEASED,
                **({"lastError": outcome.error} if outcome.error is not None else {}),
            }
        }
        if outcome.counts_attempt:
            update["$inc"] = {"attempts": 1}
        async with self._database.guard() as database:
            result = await database[DELIVERIES].update_one(
                _leased(delivery_id, owner, version), update
            )
        return bool(result.matched_count)

    async def fail_endpoint(self, endpoint: str, now: datetime, error: str) -> int:
        async with self._database.guard() as database:
            result = await database[DELIVERIES].update_many(
                {"endpoint": endpoint, "status": PENDING, "leaseUntil": {"$lte": now}},
                {
                    "$set": {
                        "status": DeliveryStatus.FAILED.value,
                        "finishedAt": now,
                        "lastError": error,
                    }
                },
            )
        return int(result.modified_count)

    async def list_failed(self, limit: int) -> list[Delivery]:
        async with self._database.guard() as database:
            return [
                _delivery(document)
                async for document in database[DELIVERIES].find(
                    {"status": DeliveryStatus.FAILED.value},
                    sort=[("finishedAt", DESCENDING), ("_id", ASCENDING)],
                    limit=limit,
                )
            ]

    async def retry_failed(self, delivery_id: str, now: datetime, deadline: datetime) -> bool:
        async with self._database.guard() as database:
            result = await database[DELIVERIES].update_one(
                {"_id": delivery_id, "status": DeliveryStatus.FAILED.value},
                {
                    "$max": {"nextAt": now},  # an event not yet due keeps its time
                    "$set": {
                        "status": PENDING,
                        "deadline": deadline,
                        "attempts": 0,
                        "finishedAt": None,
                        **UNLEASED,
                    },
                },
            )
        return bool(result.matched_count)

    async def get(self, delivery_id: str) -> Delivery | None:
        async with self._database.guard() as database:
            document = await database[DELIVERIES].find_one({"_id": delivery_id})
        return None if document is None else _delivery(document)

    async def turn_off(self, endpoint: str, url: str, now: datetime) -> None:
        async with self._database.guard() as database:
            await database[ENDPOINTS].update_one(
                {"_id": endpoint}, {"$set": {"url": url, "offSince": now}}, upsert=True
            )

    async def turned_off(self) -> dict[str, str]:
        async with self._database.guard() as database:
            return {
                str(document["_id"]): str(document["url"])
                async for document in database[ENDPOINTS].find({})
            }

    async def turn_on(self, endpoint: str) -> None:
        async with self._database.guard() as database:
            await database[ENDPOINTS].delete_one({"_id": endpoint})

    async def purge(self, done_before: datetime, failed_before: datetime, limit: int) -> int:
        async with self._database.guard() as database:
            expired = [
                document["_id"]
                async for document in database[DELIVERIES].find(
                    {
                        "$or": [
                            {
                                "status": {"$in": ["delivered", "dropped"]},
                                "finishedAt": {"$lte": done_before},
                            },
                            {"status": "failed", "finishedAt": {"$lte": failed_before}},
                            # Never sent (its endpoint was removed): as if it failed at its
                            # deadline, so its payload goes all the same.
                            {"status": "pending", "deadline": {"$lte": failed_before}},
                        ]
                    },
                    projection={"_id": True},
                    limit=limit,
                )
            ]
            if not expired:
                return 0
            result = await database[DELIVERIES].delete_many({"_id": {"$in": expired}})
        return int(result.deleted_count)

    async def backlog(self) -> tuple[int, int, datetime | None]:
        async with self._database.guard() as database:
            deliveries = database[DELIVERIES]
            pending: int = await deliveries.count_documents({"status": PENDING})
            failed: int = await deliveries.count_documents({"status": DeliveryStatus.FAILED.value})
            oldest = await deliveries.find_one({"status": PENDING}, sort=[("dueAt", ASCENDING)])
        return pending, failed, None if oldest is None else as_datetime(oldest["dueAt"])


def outbox_entries(deliveries: list[Delivery]) -> list[dict[str, Any]]:
    """Deliveries as the record's `webhookOutbox` holds them until they are relayed."""
    return [{"entryKey": f"{d.id}@{d.version}", **_document(d)} for d in deliveries]


def _leased(delivery_id: str, owner: str, version: int) -> dict[str, Any]:
    return {"_id": delivery_id, "leaseOwner": owner, "version": version, "status": PENDING}


def _document(delivery: Delivery) -> dict[str, Any]:
    return record_document(delivery)


def _delivery(document: dict[str, Any]) -> Delivery:
    return document_record(Delivery, document)
