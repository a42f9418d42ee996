"""The production store's connection: MongoDB, shared by any number of service replicas.

Every write that must be atomic is a single-document operation (a change and
its webhook deliveries share the record's document), so no transaction (and no
replica set) is needed. The service starts while MongoDB is down: pymongo connects
lazily, each call that cannot reach the server is a 503 (`Unavailable`),
`/-/ready` says 503 until a ping answers, and each aggregate's indexes are
created by the first call that gets through. A request's calls share one
MONGODB_TIMEOUT_MS (`store.budget`). Once a call found no server, the calls
after it are refused at once (503 with `Retry-After`), so an outage holds no
request for long, until a ping reaches one: a probe pings every
PROBE_INTERVAL_SECONDS in the background, and `/-/ready` pings too. That is
this replica's knowledge of the server, not shared state. An outage is logged
in one short line when it starts ("store unreachable: host:port: reason") and
one when it ends, not on every call. The store keeps to the collection calls
mongomock-motor supports (find_one, find, insert_one, insert_many, update_one,
find_one_and_update, update_many, delete_one, delete_many, count_documents,
create_index), so CI runs the same code without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit

import pymongo
from pymongo import AsyncMongoClient
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from teleconsult.errors import Unavailable
from teleconsult.observability.logs import Outage
from teleconsult.store.budget import store_call

log = logging.getLogger(__name__)

SCHEMES = ("mongodb://", "mongodb+srv://")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNLEASED: Mapping[str, Any] = MappingProxyType({"leaseUntil": EPOCH, "leaseOwner": None})
"""The lease fields of work no replica holds (an outbox job, a delivery): claimable once due."""
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


DEFAULT_TIMEOUT_SECONDS = 5.0
"""MONGODB_TIMEOUT_MS's default, for a database opened without settings (tests, tools)."""
PROBE_INTERVAL_SECONDS = 1.0
"""While no server can be reached, the pause between two background pings."""


class MongoDatabase:
    """One database, the call guard every aggregate uses, and the health part of the store."""

    def __init__(
        self,
        database: Any,
        client: Closable | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.database = database
        self.timeout_seconds = timeout_seconds
        self._client = client
        self._index_steps: Sequence[IndexStep] = ()
        self._indexed = False
        self._index_lock = asyncio.Lock()  # one index creation per process; idempotent anyway
        self._outage = Outage(log, "store unreachable", "store reachable again")
        self._unreachable: str | None = None
        """Why the last call found no server (the error's kind); None while one answers."""
        self._probe: asyncio.Task[None] | None = None
        self.retry_after = max(1, math.ceil(timeout_seconds))
        """The answer's Retry-After while unreachable: how long a ping may take."""

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[Any]:
        """MongoDB errors become 503s; the indexes come first, once the server answers.
        While no server can be reached, the call is refused without trying."""
        if self._unreachable is not None:
            raise Unavailable(self._unreachable_message(), retry_after=self.retry_after)
        async with self._call() as database:
            yield database

    @asynccontextmanager
    async def _call(self) -> AsyncIterator[Any]:
        """One call within what the request's budget leaves of MONGODB_TIMEOUT_MS.

        While the server cannot be reached every call fails alike: that is logged once
        when it starts and once when a call gets through again."""
        with store_call(self.timeout_seconds) as seconds:
            if seconds <= 0:
                raise Unavailable(
                    "The MongoDB store did not answer the request's calls within "
                    "MONGODB_TIMEOUT_MS; retry later.",
                    retry_after=self.retry_after,
                )
            try:
                with pymongo.timeout(seconds):
                    await self._ensure_indexes()
                    yield self.database
            except DuplicateKeyError:
                self._reached()  # the server answered
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
                if _no_server(error):
                    self._not_reached(type(error).__name__)
                raise Unavailable(
                    f"The MongoDB store cannot be reached ({type(error).__name__}); retry later.",
                    retry_after=self.retry_after if _no_server(error) else None,
                ) from None
            else:
                self._reached()

    def _unreachable_message(self) -> str:
        return f"The MongoDB store cannot be reached ({self._unreachable}); retry later."

    def _not_reached(self, kind: str) -> None:
        """Refuse calls until a ping gets through, and ping in the background meanwhile."""
        self._unreachable = kind
        if self._probe is None:
            # A context of its own: the probe is no request's work (nor charged to one).
            self._probe = asyncio.create_task(self._probing(), context=contextvars.Context())

    def _reached(self) -> None:
        self._unreachable = None
        self._outage.recovered()

    async def _probing(self) -> None:
        try:
            while self._unreachable is not None:
                await asyncio.sleep(PROBE_INTERVAL_SECONDS)
                with contextlib.suppress(Unavailable):
                    await self.ping()
        finally:
            self._probe = None

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
            async with self._call():
                pass
        except Unavailable:
            return

    async def ping(self) -> None:
        """A read of nothing: answered only when a server is selected and reachable. Tried
        even while calls are refused: its success ends the refusal."""
        async with self._call() as database:
            await database["teleconsult_outbox"].find_one({"_id": None})

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._client is not None:
            closed = self._client.close()
            if asyncio.iscoroutine(closed):
                await closed


def _no_server(error: PyMongoError) -> bool:
    """The call found no server to talk to (none selectable, or the connection failed), as
    opposed to one that answered with an error or was slow (a timeout of its own)."""
    return isinstance(error, ServerSelectionTimeoutError) or (
        isinstance(error, ConnectionFailure) and not error.timeout
    )


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


class MongoCollection(ABC):
    """One aggregate's collection; its `create_indexes` makes its indexes, idempotently."""

    def __init__(self, database: MongoDatabase, collection: str) -> None:
        self._database = database
        self._collection = collection

    @abstractmethod
    async def create_indexes(self, database: Any) -> None:
        """Make the collection's indexes, idempotently."""


def failed_attempt(due_field: str, due: datetime, error: str) -> dict[str, Any]:
    """The update after a failed attempt at leased work: counted, its error kept, its lease
    released, and due again at `due` (in `due_field`)."""
    return {"$set": {due_field: due, "lastError": error, **UNLEASED}, "$inc": {"attempts": 1}}


async def expire_by_date(collection: Any) -> None:
    """Let MongoDB delete each document of `collection` by itself (within a minute or so) once
    its `expiresAt` has passed: a TTL index."""
    await collection.create_index(
        [("expiresAt", pymongo.ASCENDING)], expireAfterSeconds=0, name="expiresAt_ttl"
    )


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
