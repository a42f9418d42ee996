"""The outbox in SQLite: room jobs, leased to one replica by one conditional update each."""

from __future__ import annotations

from datetime import datetime

from teleconsult.store.base import RoomJob
from teleconsult.store.sqlite.connection import (
    SQLiteTable,
    Statement,
    TableSchema,
    from_millis,
    millis,
)

TABLE = "teleconsult_outbox"


class SQLiteOutbox(SQLiteTable):
    NAME = TABLE
    SCHEMA = TableSchema(
        "id TEXT PRIMARY KEY, teleconsultation_id TEXT NOT NULL, room_id TEXT,"
        " created_at INTEGER NOT NULL, not_before INTEGER NOT NULL,"
        " lease_until INTEGER NOT NULL DEFAULT 0, lease_owner TEXT,"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT",
        {"outbox_due": "not_before"},
    )

    async def add_job(self, job: RoomJob) -> None:
        await self._connection.write(*self.added(job))

    def added(self, job: RoomJob) -> Statement:
        """The statement that writes a job, for a write that makes one (retention's)."""
        return (
            f"INSERT INTO {self._table} (id, teleconsultation_id, room_id, created_at,"
            " not_before, attempts, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.teleconsultation_id,
                job.room_id,
                millis(job.created_at),
                millis(job.not_before),
                job.attempts,
                job.last_error,
            ),
        )

    async def set_job_room(self, job_id: str, room_id: str) -> None:
        await self._connection.write(
            f"UPDATE {self._table} SET room_id = ? WHERE id = ?", (room_id, job_id)
        )

    async def finish_job(self, job_id: str) -> None:
        await self._connection.write(*self.finished(job_id))

    def finished(self, job_id: str) -> Statement:
        """The statement that finishes a job, for a write that makes it needless."""
        return f"DELETE FROM {self._table} WHERE id = ?", (job_id,)

    async def retry_job(self, job_id: str, not_before: datetime, error: str) -> None:
        await self._connection.write(
            f"UPDATE {self._table} SET attempts = attempts + 1, not_before = ?, last_error = ?,"
            " lease_until = 0, lease_owner = NULL WHERE id = ?",
            (millis(not_before), error, job_id),
        )

    async def claim_jobs(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[RoomJob]:
        candidates = await self._connection.read_all(
            f"SELECT id FROM {self._table} WHERE not_before <= ? AND lease_until <= ?"
            " ORDER BY not_before LIMIT ?",
            (millis(now), millis(now), limit),
        )
        claimed = []
        for (job_id,) in candidates:  # one conditional update each: a lease is won or not
            won = await self._connection.write(
                f"UPDATE {self._table} SET lease_until = ?, lease_owner = ?"
                " WHERE id = ? AND lease_until <= ?",
                (millis(lease_until), owner, job_id, millis(now)),
            )
            if won:
                claimed.append(job_id)
        if not claimed:
            return []
        rows = await self._connection.read_all(
            "SELECT id, teleconsultation_id, room_id, created_at, not_before, attempts,"
            f" last_error FROM {self._table} WHERE id IN ({', '.join('?' * len(claimed))})",
            claimed,
        )
        return [
            RoomJob(
                id=row[0],
                teleconsultation_id=row[1],
                room_id=row[2],
                created_at=from_millis(row[3]),
                not_before=from_millis(row[4]),
                attempts=row[5],
                last_error=row[6],
            )
            for row in rows
        ]

    async def job_backlog(self) -> tuple[int, datetime | None]:
        rows = await self._connection.read_all(
            f"SELECT count(*), min(created_at) FROM {self._table}"
        )
        count, oldest = rows[0] if rows else (0, None)
        return int(count), None if oldest is None else from_millis(oldest)
