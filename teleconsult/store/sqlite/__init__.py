"""The embedded store: one SQLite file, one module per aggregate over a shared connection."""

from __future__ import annotations

from teleconsult.store.base import Store
from teleconsult.store.sqlite.audit import SQLiteAuditTrail
from teleconsult.store.sqlite.connection import (
    DEFAULT_BUSY_TIMEOUT_MS,
    SCHEME,
    SQLiteConnection,
    sqlite_path,
)
from teleconsult.store.sqlite.idempotency import SQLiteIdempotencyKeys
from teleconsult.store.sqlite.leases import SQLiteLeases
from teleconsult.store.sqlite.outbox import SQLiteOutbox
from teleconsult.store.sqlite.provider_data import SQLiteProviderData
from teleconsult.store.sqlite.records import SQLiteRecords
from teleconsult.store.sqlite.users import SQLiteUserMap
from teleconsult.store.sqlite.webhooks import SQLiteWebhooks

__all__ = ["SCHEME", "open_sqlite", "sqlite_path"]


async def open_sqlite(
    url: str,
    teleconsultations: str,
    users: str,
    synchronous: str = "full",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> Store:
    """The store in the file `url` names, each aggregate's tables created if missing."""
    connection = await SQLiteConnection.open(url, synchronous, busy_timeout_ms)
    webhooks = SQLiteWebhooks(connection)
    outbox = SQLiteOutbox(connection)
    store = Store(
        records=SQLiteRecords(connection, teleconsultations, webhooks, outbox),
        users=SQLiteUserMap(connection, users),
        outbox=outbox,
        webhooks=webhooks,
        idempotency=SQLiteIdempotencyKeys(connection),
        provider_data=SQLiteProviderData(connection),
        health=connection,
        audit=SQLiteAuditTrail(connection),
        leases=SQLiteLeases(connection),
    )
    await connection.create_schema(store.aggregates())
    return store
