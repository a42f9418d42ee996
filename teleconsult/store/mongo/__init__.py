"""The production store: MongoDB, one module per aggregate over a shared database."""

from __future__ import annotations

from typing import Any

from teleconsult.store.base import Store
from teleconsult.store.mongo.audit import MongoAuditTrail
from teleconsult.store.mongo.connection import (
    DEFAULT_TIMEOUT_SECONDS,
    SCHEMES,
    Closable,
    MongoCollection,
    MongoDatabase,
    client_for,
    database_name,
)
from teleconsult.store.mongo.idempotency import MongoIdempotencyKeys
from teleconsult.store.mongo.leases import MongoLeases
from teleconsult.store.mongo.outbox import MongoOutbox
from teleconsult.store.mongo.provider_data import MongoProviderData
from teleconsult.store.mongo.records import MongoRecords
from teleconsult.store.mongo.users import MongoUserMap
from teleconsult.store.mongo.webhooks import MongoWebhooks

__all__ = ["SCHEMES", "connect_mongo", "database_name", "open_mongo"]


async def connect_mongo(
    url: str, database: str | None, teleconsultations: str, users: str, timeout_ms: int
) -> Store:
    """A store over a new client. MongoDB may be down: the store then answers 503 until it is
    up, and creates its indexes on the first call that gets through."""
    client = client_for(url, timeout_ms)
    return await open_mongo(
        client[database_name(url, database)], teleconsultations, users, client, timeout_ms
    )


async def open_mongo(
    database: Any,
    teleconsultations: str,
    users: str,
    client: Closable | None = None,
    timeout_ms: int = int(DEFAULT_TIMEOUT_SECONDS * 1000),
    *,
    indexes: bool = True,
) -> Store:
    """The store on `database` (a pymongo or mongomock-motor database); a request's calls
    together wait at most `timeout_ms` (MONGODB_TIMEOUT_MS). `indexes=False` creates none
    (`teleconsult migrate`: the original's user map takes the unique one once converted)."""
    connection = MongoDatabase(database, client, timeout_ms / 1000)
    store = Store(
        records=MongoRecords(connection, teleconsultations),
        users=MongoUserMap(connection, users),
        outbox=MongoOutbox(connection),
        webhooks=MongoWebhooks(connection, teleconsultations),
        idempotency=MongoIdempotencyKeys(connection),
        provider_data=MongoProviderData(connection),
        health=connection,
        audit=MongoAuditTrail(connection),
        leases=MongoLeases(connection),
    )
    collections = [part for part in store.aggregates() if isinstance(part, MongoCollection)]
    if indexes:
        await connection.prepare([collection.create_indexes for collection in collections])
    return store
