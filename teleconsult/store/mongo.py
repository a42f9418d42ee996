"""The production store: MongoDB, shared by any number of service replicas.

Every write is a single-document operation, so no transaction (and no replica
set) is needed: compare-and-set is `update_one({_id, version, __STATE__: PUBLIC})`
and counts as won only if it matched. The user map has a unique index on
(provider, receivedUserId): the first insert wins, a duplicate is read back.

The service starts while MongoDB is down: pymongo connects lazily, each call
that cannot reach the server is a 503 (`Unavailable`), `/-/ready` says 503 until
a ping answers, and the indexes are created by the first call that gets through.
The store keeps to the collection calls mongomock-motor supports (find_one,
insert_one, update_one, find_one_and_update, delete_one, count_documents,
create_index, find, delete_many), so CI runs the same code without a server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from teleconsult.core.domain import Phase, RecordState, Teleconsultation
from teleconsult.errors import Unavailable
from teleconsult.store.base import KeyedAnswer, RoomJob, VersionConflict
from teleconsult.store.documents import as_datetime, from_document, to_document, user_document

log = logging.getLogger(__name__)

SCHEMES = ("mongodb://", "mongodb+srv://")
KEYS_COLLECTION = "teleconsult_idempotency_keys"
OUTBOX_COLLECTION = "teleconsult_outbox"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_DATABASE = "teleconsult"


class Closable(Protocol):
    def close(self) -> Any: ...


def database_name(url: str, configured: str | None) -> str:
    """MONGODB_DATABASE, else the URL's path (`mongodb://host/<name>`), else `teleconsult`."""
    if configured:
        return configured
    path = urlsplit(url).path.lstrip("/")
    return path or DEFAULT_DATABASE


class MongoStore:
    def __init__(
        self,
        database: Any,
        teleconsultations: str,
        users: str,
        client: Closable | None = None,
    ) -> None:
        self._teleconsultations = database[teleconsultations]
        self._users = database[users]
        self._keys = database[KEYS_COLLECTION]
        self._outbox = database[OUTBOX_COLLECTION]
        self._client = client
        self._indexed = False
        self._index_lock = asyncio.Lock()

    @classmethod
    def connect(
        cls, url: str, database: str | None, teleconsultations: str, users: str, timeout_ms: int
    ) -> MongoStore:
        """A store over a new client; nothing is sent until the first call."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            timeoutMS=timeout_ms,  # every operation, so no write can outlast a change's deadline
            appname="teleconsult",
        )
        return cls(client[database_name(url, database)], teleconsultations, users, client)

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """MongoDB errors become 503s; the indexes come first, once the server answers."""
        try:
            await self._ensure_indexes()
            yield
        except DuplicateKeyError:
            raise
        except PyMongoError as error:
            # The driver's text names hosts and topology: for the log, not for callers.
            log.warning("MongoDB call failed: %s: %s", type(error).__name__, error)
            raise Unavailable(
                f"The MongoDB store cannot be reached ({type(error).__name__}); retry later."
            ) from None

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        async with self._index_lock:
            if self._indexed:
                return
            # Idempotent: creating an index that exists with the same keys is a no-op.
            await self._users.create_index(
                [("provider", ASCENDING), ("receivedUserId", ASCENDING)],
                unique=True,
                name="provider_receivedUserId_unique",
            )
            await self._users.create_index(
                [("provider", ASCENDING), ("providerUserId", ASCENDING)],
                name="provider_providerUserId",
            )
            await self._teleconsultations.create_index(
                [("__STATE__", ASCENDING), ("teleconsultationState", ASCENDING)],
                name="state_teleconsultationState",
            )
            await self._outbox.create_index(
                [("notBefore", ASCENDING), ("leaseUntil", ASCENDING)], name="due"
            )
            # MongoDB removes expired idempotency keys by itself (within a minute or so).
            await self._keys.create_index(
                [("expiresAt", ASCENDING)], expireAfterSeconds=0, name="expiresAt_ttl"
            )
            await self._keys.create_index(
                [("caller", ASCENDING), ("expiresAt", ASCENDING)], name="caller_expiresAt"
            )
            self._indexed = True

    async def prepare(self) -> None:
        """Create the indexes now if the server answers; otherwise the first call will."""
        try:
            async with self._guard():
                pass
        except Unavailable:
            return

    async def insert(self, teleconsultation: Teleconsultation) -> None:
        async with self._guard():
            await self._teleconsultations.insert_one(_to_mongo(teleconsultation))

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        async with self._guard():
            document = await self._teleconsultations.find_one(
                {"_id": ObjectId(teleconsultation_id), "__STATE__": RecordState.PUBLIC.value}
            )
        return None if document is None else _from_mongo(document)

    async def replace(self, teleconsultation: Teleconsultation, expected_version: int) -> None:
        document = _to_mongo(teleconsultation)
        object_id = document.pop("_id")
        async with self._guard():
            result = await self._teleconsultations.update_one(
                {
                    "_id": object_id,
                    "version": expected_version,
                    "__STATE__": RecordState.PUBLIC.value,
                },
                {"$set": document},
            )
        if result.matched_count != 1:
            raise VersionConflict(teleconsultation.id)

    async def find_user(self, provider: str, external_id: str) -> str | None:
        async with self._guard():
            document = await self._users.find_one(
                {"provider": provider, "receivedUserId": external_id}
            )
        return None if document is None else str(document["providerUserId"])

    async def add_user(
        self, provider: str, external_id: str, provider_user_id: str, creator_id: str
    ) -> str:
        document = user_document(provider, external_id, provider_user_id, creator_id)
        document["_id"] = ObjectId(document["_id"])
        try:
            async with self._guard():
                await self._users.insert_one(document)
        except DuplicateKeyError:
            pass  # another request (or replica) mapped this user first: its mapping stands
        stored = await self.find_user(provider, external_id)
        if stored is None:
            raise Unavailable("The MongoDB store lost a user mapping it had just written.")
        return stored

    async def find_external_id(self, provider: str, provider_user_id: str) -> str | None:
        async with self._guard():
            document = await self._users.find_one(
                {"provider": provider, "providerUserId": provider_user_id}
            )
        return None if document is None else str(document["receivedUserId"])

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        async with self._guard():
            document = await self._teleconsultations.find_one(
                {"_id": ObjectId(teleconsultation_id)}
            )
        return None if document is None else _from_mongo(document)

    async def add_job(self, job: RoomJob) -> None:
        async with self._guard():
            await self._outbox.insert_one(
                {
                    "_id": job.id,
                    "teleconsultationId": job.teleconsultation_id,
                    "roomId": job.room_id,
                    "createdAt": job.created_at,
                    "notBefore": job.not_before,
                    "leaseUntil": EPOCH,
                    "leaseOwner": None,
                    "attempts": job.attempts,
                    "lastError": job.last_error,
                }
            )

    async def set_job_room(self, job_id: str, room_id: str) -> None:
        async with self._guard():
            await self._outbox.update_one({"_id": job_id}, {"$set": {"roomId": room_id}})

    async def finish_job(self, job_id: str) -> None:
        async with self._guard():
            await self._outbox.delete_one({"_id": job_id})

    async def retry_job(self, job_id: str, not_before: datetime, error: str) -> None:
        async with self._guard():
            await self._outbox.update_one(
                {"_id": job_id},
                {
                    "$set": {
                        "notBefore": not_before,
                        "lastError": error,
                        "leaseUntil": EPOCH,
                        "leaseOwner": None,
                    },
                    "$inc": {"attempts": 1},
                },
            )

    async def claim_jobs(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[RoomJob]:
        due = {"notBefore": {"$lte": now}, "leaseUntil": {"$lte": now}}
        claimed = []
        async with self._guard():
            for _ in range(limit):  # one conditional update per job: a lease is won or not
                document = await self._outbox.find_one_and_update(
                    due,
                    {"$set": {"leaseUntil": lease_until, "leaseOwner": owner}},
                    return_document=ReturnDocument.AFTER,
                )
                if document is None:
                    break
                claimed.append(
                    RoomJob(
                        id=document["_id"],
                        teleconsultation_id=document["teleconsultationId"],
                        room_id=document["roomId"],
                        created_at=as_datetime(document["createdAt"]),
                        not_before=as_datetime(document["notBefore"]),
                        attempts=document["attempts"],
                        last_error=document["lastError"],
                    )
                )
        return claimed

    async def job_backlog(self) -> tuple[int, datetime | None]:
        async with self._guard():
            count = await self._outbox.count_documents({})
            oldest = await self._outbox.find_one({}, sort=[("createdAt", ASCENDING)])
        return count, None if oldest is None else as_datetime(oldest["createdAt"])

    async def claim_key(
        self,
        scope: str,
        caller: str,
        fingerprint: str,
        token: str,
        now: datetime,
        expires_at: datetime,
    ) -> KeyedAnswer | None:
        fresh = {
            "caller": caller,
            "fingerprint": fingerprint,
            "token": token,
            "status": None,
            "body": None,
            "expiresAt": expires_at,
        }
        try:
            async with self._guard():
                await self._keys.insert_one({"_id": scope, **fresh})
            return None
        except DuplicateKeyError:
            pass
        async with self._guard():
            expired = await self._keys.update_one(
                {"_id": scope, "expiresAt": {"$lte": now}}, {"$set": fresh}
            )
            if expired.matched_count == 1:
                return None
            held = await self._keys.find_one({"_id": scope})
        if held is None:  # expired and removed in between: claim it again
            return await self.claim_key(scope, caller, fingerprint, token, now, expires_at)
        return KeyedAnswer(held["fingerprint"], held["status"], held["body"])

    async def count_keys(self, caller: str, now: datetime) -> int:
        async with self._guard():
            count: int = await self._keys.count_documents(
                {"caller": caller, "expiresAt": {"$gt": now}}
            )
        return count

    async def purge_expired_keys(self, now: datetime, limit: int) -> int:
        """MongoDB's TTL index removes expired keys too; this only makes it prompt."""
        async with self._guard():
            expired = [
                document["_id"]
                async for document in self._keys.find(
                    {"expiresAt": {"$lte": now}}, projection={"_id": True}, limit=limit
                )
            ]
            if not expired:
                return 0
            result = await self._keys.delete_many({"_id": {"$in": expired}})
        return int(result.deleted_count)

    async def finish_key(
        self, scope: str, token: str, status: int, body: str, expires_at: datetime
    ) -> None:
        async with self._guard():
            await self._keys.update_one(
                {"_id": scope, "token": token},
                {"$set": {"status": status, "body": body, "expiresAt": expires_at}},
            )

    async def release_key(self, scope: str, token: str) -> None:
        async with self._guard():
            await self._keys.delete_one({"_id": scope, "token": token})

    async def count_by_state(self) -> dict[str, int]:
        async with self._guard():
            return {
                phase.value: await self._teleconsultations.count_documents(
                    {"teleconsultationState": phase.value}
                )
                for phase in Phase
            }

    async def ping(self) -> None:
        async with self._guard():
            await self._teleconsultations.find_one({"_id": None})

    async def close(self) -> None:
        if self._client is not None:
            closed = self._client.close()
            if asyncio.iscoroutine(closed):
                await closed


def _to_mongo(teleconsultation: Teleconsultation) -> dict[str, Any]:
    document = to_document(teleconsultation)
    document["_id"] = ObjectId(document["_id"])
    return document


def _from_mongo(document: dict[str, Any]) -> Teleconsultation:
    return from_document({**document, "_id": str(document["_id"])})
