"""Teleconsultation records in MongoDB: compare-and-set is `update_one({_id, version, PUBLIC})`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING

from teleconsult.core.domain import Phase, RecordState, Teleconsultation
from teleconsult.errors import CutoffPassed, VersionConflict
from teleconsult.store.base import RecordPurge, RecordQuery, RecordWrite
from teleconsult.store.documents import from_document, to_document
from teleconsult.store.mongo.connection import MongoCollection
from teleconsult.store.mongo.outbox import COLLECTION as OUTBOX
from teleconsult.store.mongo.outbox import job_document
from teleconsult.store.mongo.webhooks import OUTBOX_FIELD, outbox_entries


class MongoRecords(MongoCollection):
    async def create_indexes(self, database: Any) -> None:
        await database[self._collection].create_index(
            [("__STATE__", ASCENDING), ("teleconsultationState", ASCENDING)],
            name="state_teleconsultationState",
        )
        # Listing: a participant's records by start date, and every record by start date.
        await database[self._collection].create_index(
            [
                ("participants.userExternalId", ASCENDING),
                ("startDate", ASCENDING),
                ("_id", ASCENDING),
            ],
            name="participant_startDate",
        )
        await database[self._collection].create_index(
            [("startDate", ASCENDING), ("_id", ASCENDING)], name="startDate"
        )
        # Retention: cancelled records by cancellation (their last update), live ones by end.
        await database[self._collection].create_index(
            [("__STATE__", ASCENDING), ("updatedAt", ASCENDING)], name="state_updatedAt"
        )
        await database[self._collection].create_index(
            [("__STATE__", ASCENDING), ("endDate", ASCENDING)], name="state_endDate"
        )
        await database[self._collection].create_index(
            [("providerRoomId", ASCENDING)], name="providerRoomId"
        )
        # `/-/check-up`'s count of the original's documents, which have no `version`.
        await database[self._collection].create_index([("version", ASCENDING)], name="version")

    async def insert(self, write: RecordWrite) -> bool:
        """`finished_job` is left to the caller: it lives in another collection."""
        document = _to_mongo(write.record)
        if write.deliveries:  # in the record's own document: written exactly when it is
            document[OUTBOX_FIELD] = outbox_entries(list(write.deliveries))
        async with self._database.guard() as database:
            await database[self._collection].insert_one(document)
        return False

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        return await self._find(
            {"_id": ObjectId(teleconsultation_id), "__STATE__": RecordState.PUBLIC.value}
        )

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        return await self._find({"_id": ObjectId(teleconsultation_id)})

    async def _find(self, query: dict[str, Any]) -> Teleconsultation | None:
        async with self._database.guard() as database:
            document = await database[self._collection].find_one(query)
        return None if document is None else _from_mongo(document)

    async def replace(self, write: RecordWrite) -> bool:
        """`finished_job` is left to the caller, as in `insert`; `cutoff` is read just before
        the `update_one` is sent (`Cutoff`)."""
        document = _to_mongo(write.record)
        object_id = document.pop("_id")
        update: dict[str, Any] = {"$set": document}
        if write.deliveries:  # in the same single-document write as the record
            update["$push"] = {OUTBOX_FIELD: {"$each": outbox_entries(list(write.deliveries))}}
        async with self._database.guard() as database:
            if write.cutoff is not None and write.cutoff.passed():
                raise CutoffPassed(write.record.id)
            result = await database[self._collection].update_one(
                {
                    "_id": object_id,
                    "version": write.expected_version,
                    "__STATE__": RecordState.PUBLIC.value,
                },
                update,
            )
        if result.matched_count != 1:
            raise VersionConflict(write.record.id)
        return False

    async def find_by_room(self, provider_room_id: str) -> Teleconsultation | None:
        return await self._find(
            {"providerRoomId": provider_room_id, "__STATE__": RecordState.PUBLIC.value}
        )

    async def versions(self, teleconsultation_ids: Sequence[str]) -> dict[str, int]:
        ids = [ObjectId(i) for i in teleconsultation_ids if ObjectId.is_valid(i)]
        if not ids:
            return {}
        async with self._database.guard() as database:
            cursor = database[self._collection].find({"_id": {"$in": ids}}, {"version": 1})
            return {str(document["_id"]): int(document["version"]) async for document in cursor}

    async def count_by_state(self) -> dict[str, int]:
        async with self._database.guard() as database:
            return {
                phase.value: await database[self._collection].count_documents(
                    {"teleconsultationState": phase.value}
                )
                for phase in Phase
            }

    async def count_unmigrated(self) -> int:
        async with self._database.guard() as database:
            collection = database[self._collection]
            return int(await collection.count_documents({"version": {"$exists": False}}))

    async def find_page(self, query: RecordQuery) -> list[Teleconsultation]:
        conditions: list[dict[str, Any]] = []
        if query.participant is not None:
            conditions.append({"participants.userExternalId": query.participant})
        if query.start_from is not None:
            conditions.append({"startDate": {"$gte": query.start_from}})
        if query.start_before is not None:
            conditions.append({"startDate": {"$lt": query.start_before}})
        if query.phase is not None:
            conditions.append({"teleconsultationState": query.phase.value})
        if query.after is not None:
            start, last_id = query.after
            conditions.append(
                {
                    "$or": [
                        {"startDate": {"$gt": start}},
                        {"startDate": start, "_id": {"$gt": ObjectId(last_id)}},
                    ]
                }
            )
        async with self._database.guard() as database:
            return [
                _from_mongo(document)
                async for document in database[self._collection].find(
                    {"$and": conditions} if conditions else {},
                    sort=[("startDate", ASCENDING), ("_id", ASCENDING)],
                    limit=query.limit,
                )
            ]

    async def purge(self, purge: RecordPurge) -> list[Teleconsultation]:
        due: list[dict[str, Any]] = [
            {"__STATE__": RecordState.TRASH.value, "updatedAt": {"$lt": purge.trashed_before}}
        ]
        if purge.ended_before is not None:
            due.append(
                {"__STATE__": RecordState.PUBLIC.value, "endDate": {"$lt": purge.ended_before}}
            )
        async with self._database.guard() as database:
            found = [
                document
                async for document in database[self._collection].find(
                    {"$or": due}, limit=purge.limit
                )
            ]
            if not found:
                return []
            purged = [_from_mongo(document) for document in found]
            # The rooms' jobs first, due once the deletion is done (no transaction here): a
            # record that stays after all keeps its room (the job finds it in use).
            jobs = purge.room_jobs(purged)
            if jobs:
                await database[OUTBOX].insert_many([job_document(job) for job in jobs])
            # The condition again: a record changed since it was read stays.
            await database[self._collection].delete_many(
                {"_id": {"$in": [document["_id"] for document in found]}, "$or": due}
            )
        return purged

    async def in_use(self, external_ids: Sequence[str]) -> set[str]:
        used = set()
        async with self._database.guard() as database:
            for external_id in external_ids:
                held = await database[self._collection].find_one(
                    {"participants.userExternalId": external_id}, projection={"_id": True}
                )
                if held is not None:
                    used.add(external_id)
        return used


def _to_mongo(teleconsultation: Teleconsultation) -> dict[str, Any]:
    document = to_document(teleconsultation)
    document["_id"] = ObjectId(document["_id"])
    return document


def _from_mongo(document: dict[str, Any]) -> Teleconsultation:
    return from_document({**document, "_id": str(document["_id"])})
