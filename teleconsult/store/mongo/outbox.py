"""The outbox in MongoDB: room jobs, leased to one replica by one find_one_and_update each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from teleconsult.camel import document_record, record_document
from teleconsult.store.base import RoomJob
from teleconsult.store.documents import as_datetime
from teleconsult.store.mongo.connection import (
    UNLEASED,
    MongoCollection,
    MongoDatabase,
    failed_attempt,
)

COLLECTION = "teleconsult_outbox"


class MongoOutbox(MongoCollection):
    def __init__(self, database: MongoDatabase) -> None:
        super().__init__(database, COLLECTION)

    async def create_indexes(self, database: Any) -> None:
        await database[self._collection].create_index(
            [("notBefore", ASCENDING), ("leaseUntil", ASCENDING)], name="due"
        )

    async def add_job(self, job: RoomJob) -> None:
        async with self._database.guard() as database:
            await database[self._collection].insert_one(job_document(job))

    async def set_job_room(self, job_id: str, room_id: str) -> None:
        async with self._database.guard() as database:
            await database[self._collection].update_one(
                {"_id": job_id}, {"$set": {"roomId": room_id}}
            )

    async def finish_job(self, job_id: str) -> None:
        async with self._database.guard() as database:
            await database[self._collection].delete_one({"_id": job_id})

    async def retry_job(self, job_id: str, not_before: datetime, error: str) -> None:
        async with self._database.guard() as database:
            await database[self._collection].update_one(
                {"_id": job_id}, failed_attempt("notBefore", not_before, error)
            )

    async def claim_jobs(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[RoomJob]:
        due = {"notBefore": {"$lte": now}, "leaseUntil": {"$lte": now}}
        claimed = []
        async with self._database.guard() as database:
            for _ in range(limit):  # one conditional update per job: a lease is won or not
                document = await database[self._collection].find_one_and_update(
                    due,
                    {"$set": {"leaseUntil": lease_until, "leaseOwner": owner}},
                    return_document=ReturnDocument.AFTER,
                )
                if document is None:
                    break
                claimed.append(_job(document))
        return claimed

    async def job_backlog(self) -> tuple[int, datetime | None]:
        async with self._database.guard() as database:
            count: int = await database[self._collection].count_documents({})
            oldest = await database[self._collection].find_one({}, sort=[("createdAt", ASCENDING)])
        return count, None if oldest is None else as_datetime(oldest["createdAt"])


def job_document(job: RoomJob) -> dict[str, Any]:
    """A job as stored, for `add_job` and for retention's jobs (written with their purge)."""
    return {**record_document(job), **UNLEASED}


def _job(document: dict[str, Any]) -> RoomJob:
    return document_record(RoomJob, document)
