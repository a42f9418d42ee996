"""The production store's connection: MongoDB, shared by any number of service replicas.

Every write that must be atomic is a single-document operation (a change and
its webhook deliveries share the record's document), so no transaction (and no
replica set) is needed. The service starts while MongoDB is down: pymongo connects
lazily, each call that cannot reach the server is a 503 (`Unavailable`),
`/-/ready` says 503 until a ping answers, and each aggregate's indexes are
created by the first call that gets through. An outage is logged in one short
line when it starts ("store unreachable: host:port: reason") and one when it
ends, not on every call. The store keeps to the collection
calls mongomock-motor supports (find_one, find, insert_one, insert_many, update_one,
find_one_and_update, update_many, delete_one, delete_many, count_documents,
create_index), so CI runs the same code without a server.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from teleconsult.errors import Unavailable
from teleconsult.observability.logs import Outage

log = logging.getLogger(__name__)

SCHEMES = ("mongodb://", "mongodb+srv://")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_DATABASE = "teleconsult"

IndexStep = Callable[[Any], Awaitable[None]]
"""Creates (idempotently) one aggregate's indexes, given the database."""


class Closable(Protocol):
    def close(self) -> Any: ...


def database_name(url: str, configured: str | None) -> str:
    """MONGODB_DATABASE, else the URL's path (`mongodb://host/<name>`), else `teleconsult`."""
    if configured:
        return configured
    path = urlsplit(url).path.lstrip("/")
    return path or DEFAULT_DATABASE


def client_for(url: str, timeout_ms: int) -> AsyncMongoClient[dict[str, Any]]:
    """A client that sends nothing until the first call."""
    return AsyncMongoClient(
        url,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        timeoutMS=timeout_ms,  # every operation, so no write can outlast a change's deadline
        appname="teleconsult",
    )


class MongoDatabase:
    """One database, the call guard every aggregate uses, and the health part of the store."""

    def __init__(self, database: Any, client: Closable | None = None) -> None:
        self.database = database
        self._client = client
        self._index_steps: Sequence[IndexStep] = ()
        self._indexed = False
        self._index_lock = asyncio.Lock()  # one index creation per process; idempotent anyway
        self._outage = Outage(log, "store unreachable", "store reachable again")

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[Any]:
        """MongoDB errors become 503s; the indexes come first, once the server answers.

        While the server cannot be reached every call fails alike: that is logged once
        when it starts and once when a call gets through again."""
        try:
            await self._ensure_indexes()
            yield self.database
        except DuplicateKeyError:
            self._outage.recovered()  # the server answered
            raise
        except PyMongoError as error:
            # The driver's text names hosts and topology: shortened for the log, and only
            # the error's kind for callers.
            if isinstance(error, ConnectionFailure):
                self._outage.failed(short_reason(error), store="mongodb")
            else:
                log.warning(
                    "MongoDB call failed: %s: %s", type(error).__name__, short_reason(error)
                )
            raise Unavailable(
                f"The MongoDB store cannot be reached ({type(error).__name__}); retry later."
            ) from None
        else:
            self._outage.recovered()

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        async with self._index_lock:
            if self._indexed:
                return
            # Idempotent: creating an index that exists with the same keys is a no-op.
            for step in self._index_steps:
                await step(self.database)
            self._indexed = True

    async def prepare(self, index_steps: Sequence[IndexStep]) -> None:
        """Create each aggregate's indexes now if the server answers; else the first call will."""
        self._index_steps = index_steps
        try:
            async with self.guard():
                pass
        except Unavailable:
            return

    async def ping(self) -> None:
        """A read of nothing: answered only when a server is selected and reachable."""
        async with self.guard() as database:
            await database["teleconsult_outbox"].find_one({"_id": None})

    async def close(self) -> None:
        if self._client is not None:
            closed = self._client.close()
            if asyncio.iscoroutine(closed):
                await closed


_CONFIGURED_TIMEOUTS = re.compile(r"\s*\(configured timeouts:[^)]*\)")
_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
_NEXT_SERVER = re.compile(r",\s*(?=\S+:\d+: )")
MAX_REASON_CHARS = 300


def short_reason(error: PyMongoError) -> str:
    """The driver's message without what repeats on every call: the topology dump, the
    configured timeouts, the server's whole reply. `127.0.0.1:27017: Connection refused`."""
    text = str(error).split(", Timeout: ", 1)[0].split(", full error: ", 1)[0]
    text = _ERRNO.sub("", _CONFIGURED_TIMEOUTS.sub("", text))
    text = _NEXT_SERVER.sub("; ", text.splitlines()[0] if text else "")
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "..."
    return text or type(error).__name__


class MongoCollection:
    """One aggregate's collection; its `create_indexes` makes its indexes, idempotently."""

    def __init__(self, database: MongoDatabase, collection: str) -> None:
        self._database = database
        self._collection = collection


async def delete_first(collection: Any, query: dict[str, Any], limit: int) -> int:
    """Delete up to `limit` documents matching `query` (a bounded purge); return how many went."""
    found = [
        document["_id"]
        async for document in collection.find(query, projection={"_id": True}, limit=limit)
    ]
    if not found:
        return 0
    result = await collection.delete_many({"_id": {"$in": found}})
    return int(result.deleted_count)
