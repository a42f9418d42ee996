"""Webhook deliveries in SQLite: written in the change's own transaction, leased by one
conditional update each; and the endpoints turned off."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from teleconsult.store.base import Delivery, DeliveryStatus
from teleconsult.store.delivery_outcomes import FinishedDeliveries, Outcome
from teleconsult.store.sqlite.connection import (
    SQLiteConnection,
    SQLiteTable,
    Statement,
    TableSchema,
    encode,
    from_millis,
    millis,
    quoted,
)

DELIVERIES = "teleconsult_webhook_deliveries"
ENDPOINTS = "teleconsult_webhook_endpoints"
PENDING = DeliveryStatus.PENDING.value
_COLUMNS = (
    "id, event_id, endpoint, teleconsultation_id, type, payload, due_at, seq, version, status,"
    " next_at, deadline, attempts, last_error, finished_at"
)


class SQLiteWebhooks(FinishedDeliveries, SQLiteTable):
    NAME = DELIVERIES
    SCHEMA = TableSchema(
        "id TEXT PRIMARY KEY, event_id TEXT NOT NULL, endpoint TEXT NOT NULL,"
        " teleconsultation_id TEXT NOT NULL, type TEXT NOT NULL, payload TEXT NOT NULL,"
        " due_at INTEGER NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL,"
        " status TEXT NOT NULL, next_at INTEGER NOT NULL, deadline INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, finished_at INTEGER,"
        " lease_until INTEGER NOT NULL DEFAULT 0, lease_owner TEXT",
        {
            "webhook_deliveries_due": "status, next_at",
            "webhook_deliveries_queue": "endpoint, teleconsultation_id, status, due_at, seq",
            "webhook_deliveries_finished": "status, finished_at",
        },
    )
    ENDPOINTS_SCHEMA = TableSchema(
        "name TEXT PRIMARY KEY, url TEXT NOT NULL, off_since INTEGER NOT NULL"
    )

    def __init__(self, connection: SQLiteConnection) -> None:
        super().__init__(connection)
        self._endpoints = quoted(ENDPOINTS)

    async def create_schema(self, db: aiosqlite.Connection) -> None:
        await super().create_schema(db)
        await self.ENDPOINTS_SCHEMA.create(db, ENDPOINTS)

    def put(self, deliveries: Sequence[Delivery]) -> list[Statement]:
        """The statements that write `deliveries` (run in the change's own transaction)."""
        return [
            (
                f"INSERT INTO {self._table} ({_COLUMNS}) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " payload = excluded.payload, due_at = excluded.due_at, seq = excluded.seq,"
                " version = excluded.version, status = excluded.status,"
                " next_at = excluded.next_at, deadline = excluded.deadline, attempts = 0,"
                " last_error = NULL, finished_at = excluded.finished_at"
                f" WHERE {self._table}.version < excluded.version"
                f" AND {self._table}.status IN ('pending', 'dropped')",
                _row(delivery),
            )
            for delivery in deliveries
        ]

    async def relay(self, limit: int) -> int:
        return 0  # written in the change's own transaction

    async def claim(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        t = self._table
        candidates = await self._connection.read_all(
            f"SELECT id FROM {t} AS d WHERE status = ? AND next_at <= ? AND lease_until <= ?"
            f" AND NOT EXISTS (SELECT 1 FROM {t} AS e WHERE e.endpoint = d.endpoint"
            " AND e.teleconsultation_id = d.teleconsultation_id AND e.status = ?"
            " AND (e.due_at < d.due_at OR (e.due_at = d.due_at AND e.seq < d.seq)))"
            " ORDER BY next_at LIMIT ?",
            (PENDING, millis(now), millis(now), PENDING, limit),
        )
        claimed = []
        for (delivery_id,) in candidates:  # one conditional update each: a lease is won or not
            won = await self._connection.write(
                f"UPDATE {t} SET lease_until = ?, lease_owner = ?"
                " WHERE id = ? AND status = ? AND lease_until <= ?",
                (millis(lease_until), owner, delivery_id, PENDING, millis(now)),
            )
            if won:
                claimed.append(delivery_id)
        if not claimed:
            return []
        return await self._deliveries("id IN (" + ", ".join("?" * len(claimed)) + ")", claimed)

    async def retry_later(
        self, delivery_id: str, owner: str, version: int, next_at: datetime, error: str
    ) -> bool:
        retried = await self._connection.write_together(
            [
                (
                    f"UPDATE {self._table} SET attempts = attempts + 1, next_at = ?,"
                    " last_error = ?, lease_until = 0, lease_owner = NULL"
                    " WHERE id = ? AND lease_owner = ? AND version = ? AND status = ?",
                    (millis(next_at), error, delivery_id, owner, version, PENDING),
                ),
                (  # the queue behind it waits as long: claims skip it meanwhile
                    f"UPDATE {self._table} SET next_at = max(next_at, ?) WHERE status = ?"
                    f" AND (endpoint, teleconsultation_id) = (SELECT endpoint,"
                    f" teleconsultation_id FROM {self._table} WHERE id = ?) AND id != ?",
                    (millis(next_at), PENDING, delivery_id, delivery_id),
                ),
            ]
        )
        return retried == 1

    async def _finish(self, delivery_id: str, owner: str, version: int, outcome: Outcome) -> bool:
        attempts = "attempts + 1" if outcome.counts_attempt else "attempts"
        finished = await self._connection.write(
            f"UPDATE {self._table} SET status = ?, finished_at = ?, attempts = {attempts},"
            " last_error = coalesce(?, last_error), lease_until = 0, lease_owner = NULL"
            " WHERE id = ? AND lease_owner = ? AND version = ? AND status = ?",
            (
                outcome.status.value,
                millis(outcome.at),
                outcome.error,
                delivery_id,
                owner,
                version,
                PENDING,
            ),
        )
        return finished == 1

    async def fail_endpoint(self, endpoint: str, now: datetime, error: str) -> int:
        return await self._connection.write(
            f"UPDATE {self._table} SET status = ?, finished_at = ?, last_error = ?"
            " WHERE endpoint = ? AND status = ? AND lease_until <= ?",
            (DeliveryStatus.FAILED.value, millis(now), error, endpoint, PENDING, millis(now)),
        )

    async def list_failed(self, limit: int) -> list[Delivery]:
        return await self._deliveries(
            "status = ? ORDER BY finished_at DESC, id LIMIT ?",
            (DeliveryStatus.FAILED.value, limit),
        )

    async def retry_failed(self, delivery_id: str, now: datetime, deadline: datetime) -> bool:
        retried = await self._connection.write(
            f"UPDATE {self._table} SET status = ?, next_at = max(next_at, ?), deadline = ?,"
            " attempts = 0,"
            " finished_at = NULL, lease_until = 0, lease_owner = NULL WHERE id = ? AND status = ?",
            (PENDING, millis(now), millis(deadline), delivery_id, DeliveryStatus.FAILED.value),
        )
        return retried == 1

    async def get(self, delivery_id: str) -> Delivery | None:
        found = await self._deliveries("id = ?", (delivery_id,))
        return found[0] if found else None

    async def turn_off(self, endpoint: str, url: str, now: datetime) -> None:
        await self._connection.write(
            f"INSERT INTO {self._endpoints} (name, url, off_since) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET url = excluded.url, off_since = excluded.off_since",
            (endpoint, url, millis(now)),
        )

    async def turned_off(self) -> dict[str, str]:
        rows = await self._connection.read_all(f"SELECT name, url FROM {self._endpoints}")
        return {str(name): str(url) for name, url in rows}

    async def turn_on(self, endpoint: str) -> None:
        await self._connection.write(f"DELETE FROM {self._endpoints} WHERE name = ?", (endpoint,))

    async def purge(self, done_before: datetime, failed_before: datetime, limit: int) -> int:
        return await self._connection.write(
            f"DELETE FROM {self._table} WHERE id IN (SELECT id FROM {self._table}"
            " WHERE (status IN ('delivered', 'dropped') AND finished_at <= ?)"
            " OR (status = 'failed' AND finished_at <= ?)"
            # Never sent (its endpoint was removed): as if it failed at its deadline.
            " OR (status = 'pending' AND deadline <= ?) LIMIT ?)",
            (millis(done_before), millis(failed_before), millis(failed_before), limit),
        )

    async def backlog(self) -> tuple[int, int, datetime | None]:
        rows = await self._connection.read_all(
            f"SELECT total(status = 'pending'), total(status = 'failed'),"
            f" min(CASE WHEN status = 'pending' THEN due_at END) FROM {self._table}"
        )
        pending, failed, oldest = rows[0]
        return int(pending), int(failed), None if oldest is None else from_millis(oldest)

    async def _deliveries(self, where: str, parameters: Sequence[object]) -> list[Delivery]:
        rows = await self._connection.read_all(
            f"SELECT {_COLUMNS} FROM {self._table} WHERE {where}", parameters
        )
        return [_delivery(row) for row in rows]


def _row(delivery: Delivery) -> tuple[object, ...]:
    d = delivery
    return (
        d.id, d.event_id, d.endpoint, d.teleconsultation_id, d.type, encode(d.payload),
        millis(d.due_at), d.seq, d.version, d.status.value, millis(d.next_at),
        millis(d.deadline), d.attempts, d.last_error,
        None if d.finished_at is None else millis(d.finished_at),
    )  # fmt: skip


def _delivery(row: Any) -> Delivery:
    payload: dict[str, Any] = json.loads(row[5])
    return Delivery(
        id=row[0],
        event_id=row[1],
        endpoint=row[2],
        teleconsultation_id=row[3],
        type=row[4],
        payload=payload,
        due_at=from_millis(row[6]),
        seq=row[7],
        version=row[8],
        status=DeliveryStatus(row[9]),
        next_at=from_millis(row[10]),
        deadline=from_millis(row[11]),
        attempts=row[12],
        last_error=row[13],
        finished_at=None if row[14] is None else from_millis(row[14]),
    )
