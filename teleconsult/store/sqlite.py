"""The embedded store: one SQLite file, no server to run.

Each record is a JSON document plus the columns the queries need. Each write is
one statement in its own IMMEDIATE transaction, so compare-and-set is one atomic
`UPDATE ... WHERE version = ?`; WAL mode lets several processes share the file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from teleconsult.core.domain import RecordState, Teleconsultation
from teleconsult.errors import Unavailable
from teleconsult.store.base import KeyedAnswer, RoomJob, VersionConflict
from teleconsult.store.documents import from_document, to_document, user_document

SCHEME = "sqlite://"


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
    if not url.startswith(SCHEME + "/") or url == SCHEME + "/":
        raise ValueError("use sqlite:///<path>, for example sqlite:///teleconsult.db")
    return url[len(SCHEME) + 1 :]


SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA"}
"""SQLITE_SYNCHRONOUS. In WAL mode, FULL syncs the log at every commit: an acknowledged write
survives a power failure. NORMAL syncs at checkpoints only: it survives a crash of the
process, but a power failure may lose the last commits (docs/operations.md, Security)."""

KEYS_TABLE = '"teleconsult_idempotency_keys"'
OUTBOX_TABLE = '"teleconsult_outbox"'


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _reader(path: str) -> sqlite3.Connection:
    """A read-only connection for the event loop's own thread."""
    # WAL readers do not wait for writers; the short timeout only bounds the rare wait
    # (a checkpoint), since this connection blocks the event loop while it waits.
    connection = sqlite3.connect(path, isolation_level=None, timeout=0.25)
    connection.execute("PRAGMA query_only = 1")
    return connection


def _try_open(path: str) -> None:
    sqlite3.connect(path).close()


def _encode(document: dict[str, Any]) -> str:
    return json.dumps(document, default=_encode_value, separators=(",", ":"))


def _encode_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


class SQLiteStore:
    def __init__(
        self,
        connection: aiosqlite.Connection,
        teleconsultations: str,
        users: str,
        synchronous: str = "full",
    ) -> None:
        self._db = connection
        self._synchronous = SYNCHRONOUS[synchronous]
        self._lock = asyncio.Lock()
        self._reader: sqlite3.Connection | None = None
        self._teleconsultations = f'"{teleconsultations}"'
        self._users = f'"{users}"'
        self._users_by_provider_id = f'"{users}_provider_user_id"'

    @classmethod
    async def open(
        cls, url: str, teleconsultations: str, users: str, synchronous: str = "full"
    ) -> SQLiteStore:
        path = sqlite_path(url)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # Try the file first: a failed aiosqlite.connect leaves its worker thread to
                # report to an event loop that may be closed by then (a stray traceback).
                await asyncio.to_thread(_try_open, path)
            connection = await aiosqlite.connect(path, isolation_level=None, timeout=10)
        except (OSError, sqlite3.Error) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise Unavailable(f"Cannot open the SQLite store at {path}: {reason}.") from None
        store = cls(connection, teleconsultations, users, synchronous)
        try:
            await store._create_schema()
        except Unavailable:
            await connection.close()
            raise
        if path != ":memory:":  # a second connection to :memory: would be another database
            try:
                store._reader = _reader(path)
            except sqlite3.Error as error:
                await connection.close()
                raise Unavailable(f"Cannot open the SQLite store at {path}: {error}.") from None
        return store

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """One operation at a time on this connection; SQLite errors become 503s."""
        async with self._lock:
            try:
                yield
            except sqlite3.Error as error:
                raise Unavailable(f"The SQLite store failed: {error}.") from None

    async def _write(self, sql: str, parameters: tuple[object, ...]) -> int:
        """Run one write in its own IMMEDIATE transaction and return the rows it changed.

        IMMEDIATE takes the write lock first, waiting (busy_timeout) for other
        processes, so the statement always runs on the newest data: without it,
        WAL mode answers "database is locked" at once when another process wrote
        since this connection last read. The transaction is shielded: a request
        cancelled mid-write lets it finish, so its outcome is never a guess.
        """
        return await asyncio.shield(self._transaction(sql, parameters))

    async def _transaction(self, sql: str, parameters: tuple[object, ...]) -> int:
        async with self._guard():
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await self._db.execute(sql, parameters)
                await self._db.execute("COMMIT")
            except Exception:
                await self._db.execute("ROLLBACK")
                raise
            return cursor.rowcount

    async def _create_schema(self) -> None:
        async with self._guard():
            await self._db.execute("PRAGMA busy_timeout=10000")
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            await self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {self._teleconsultations} ("
                " id TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL,"
                " document TEXT NOT NULL)"
            )
            await self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {self._users} ("
                " provider TEXT NOT NULL, external_id TEXT NOT NULL,"
                " provider_user_id TEXT NOT NULL, document TEXT NOT NULL,"
                " PRIMARY KEY (provider, external_id))"
            )
            await self._db.execute(
                f"CREATE INDEX IF NOT EXISTS {self._users_by_provider_id}"
                f" ON {self._users} (provider, provider_user_id)"
            )
            await self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} ("
                " id TEXT PRIMARY KEY, teleconsultation_id TEXT NOT NULL, room_id TEXT,"
                " created_at INTEGER NOT NULL, not_before INTEGER NOT NULL,"
                " lease_until INTEGER NOT NULL DEFAULT 0, lease_owner TEXT,"
                " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)"
            )
            await self._db.execute(
                f"CREATE INDEX IF NOT EXISTS outbox_due ON {OUTBOX_TABLE} (not_before)"
            )
            await self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {KEYS_TABLE} ("
                " scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, token TEXT NOT NULL,"
                " status INTEGER, body TEXT, expires_at INTEGER NOT NULL, caller TEXT)"
            )
            cursor = await self._db.execute(f"PRAGMA table_info({KEYS_TABLE})")
            if "caller" not in {row[1] for row in await cursor.fetchall()}:  # before 0.2
                await self._db.execute(f"ALTER TABLE {KEYS_TABLE} ADD COLUMN caller TEXT")
            await self._db.execute(
                f"CREATE INDEX IF NOT EXISTS keys_by_caller ON {KEYS_TABLE} (caller, expires_at)"
            )
            await self._db.execute(
                f"CREATE INDEX IF NOT EXISTS keys_by_expiry ON {KEYS_TABLE} (expires_at)"
            )

    async def insert(self, teleconsultation: Teleconsultation) -> None:
        await self._write(
            f"INSERT INTO {self._teleconsultations} (id, state, version, document)"
            " VALUES (?, ?, ?, ?)",
            (
                teleconsultation.id,
                teleconsultation.state.value,
                teleconsultation.version,
                _encode(to_document(teleconsultation)),
            ),
        )

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        row = await self._read_one(
            f"SELECT document FROM {self._teleconsultations} WHERE id = ? AND state = ?",
            (teleconsultation_id, RecordState.PUBLIC.value),
        )
        return None if row is None else from_document(json.loads(row[0]))

    async def _read_one(self, sql: str, parameters: tuple[object, ...]) -> Any:
        """One row by key. Read on the event loop's own connection when there is one.

        A primary-key lookup takes microseconds, less than handing it to aiosqlite's
        thread and back, and WAL readers never wait for writers: polling, the hot
        path, stays on the loop. Writes keep their thread.
        """
        if self._reader is None:
            async with self._guard():
                cursor = await self._db.execute(sql, parameters)
                return await cursor.fetchone()
        try:
            return self._reader.execute(sql, parameters).fetchone()
        except sqlite3.Error as error:
            raise Unavailable(f"The SQLite store failed: {error}.") from None

    async def replace(self, teleconsultation: Teleconsultation, expected_version: int) -> None:
        changed = await self._write(
            f"UPDATE {self._teleconsultations} SET state = ?, version = ?, document = ?"
            " WHERE id = ? AND version = ? AND state = ?",
            (
                teleconsultation.state.value,
                teleconsultation.version,
                _encode(to_document(teleconsultation)),
                teleconsultation.id,
                expected_version,
                RecordState.PUBLIC.value,
            ),
        )
        if changed != 1:
            raise VersionConflict(teleconsultation.id)

    async def find_user(self, provider: str, external_id: str) -> str | None:
        row = await self._read_one(
            f"SELECT provider_user_id FROM {self._users} WHERE provider = ? AND external_id = ?",
            (provider, external_id),
        )
        return None if row is None else str(row[0])

    async def add_user(
        self, provider: str, external_id: str, provider_user_id: str, creator_id: str
    ) -> str:
        document = user_document(provider, external_id, provider_user_id, creator_id)
        await self._write(
            f"INSERT INTO {self._users} (provider, external_id, provider_user_id, document)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (provider, external_id) DO NOTHING",
            (provider, external_id, provider_user_id, _encode(document)),
        )
        stored = await self.find_user(provider, external_id)
        if stored is None:  # only if someone deleted the row in between
            raise Unavailable("The SQLite store lost a user mapping it had just written.")
        return stored

    async def find_external_id(self, provider: str, provider_user_id: str) -> str | None:
        row = await self._read_one(
            f"SELECT external_id FROM {self._users} WHERE provider = ? AND provider_user_id = ?"
            " LIMIT 1",
            (provider, provider_user_id),
        )
        return None if row is None else str(row[0])

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        row = await self._read_one(
            f"SELECT document FROM {self._teleconsultations} WHERE id = ?", (teleconsultation_id,)
        )
        return None if row is None else from_document(json.loads(row[0]))

    async def add_job(self, job: RoomJob) -> None:
        await self._write(
            f"INSERT INTO {OUTBOX_TABLE} (id, teleconsultation_id, room_id, created_at,"
            " not_before, attempts, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.teleconsultation_id,
                job.room_id,
                _millis(job.created_at),
                _millis(job.not_before),
                job.attempts,
                job.last_error,
            ),
        )

    async def set_job_room(self, job_id: str, room_id: str) -> None:
        await self._write(f"UPDATE {OUTBOX_TABLE} SET room_id = ? WHERE id = ?", (room_id, job_id))

    async def finish_job(self, job_id: str) -> None:
        await self._write(f"DELETE FROM {OUTBOX_TABLE} WHERE id = ?", (job_id,))

    async def retry_job(self, job_id: str, not_before: datetime, error: str) -> None:
        await self._write(
            f"UPDATE {OUTBOX_TABLE} SET attempts = attempts + 1, not_before = ?, last_error = ?,"
            " lease_until = 0, lease_owner = NULL WHERE id = ?",
            (_millis(not_before), error, job_id),
        )

    async def claim_jobs(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[RoomJob]:
        async with self._guard():
            cursor = await self._db.execute(
                f"SELECT id FROM {OUTBOX_TABLE} WHERE not_before <= ? AND lease_until <= ?"
                " ORDER BY not_before LIMIT ?",
                (_millis(now), _millis(now), limit),
            )
            candidates = [row[0] for row in await cursor.fetchall()]
        claimed = []
        for job_id in candidates:  # one conditional update each: a lease is won or not
            won = await self._write(
                f"UPDATE {OUTBOX_TABLE} SET lease_until = ?, lease_owner = ?"
                " WHERE id = ? AND lease_until <= ?",
                (_millis(lease_until), owner, job_id, _millis(now)),
            )
            if won:
                claimed.append(job_id)
        if not claimed:
            return []
        async with self._guard():
            cursor = await self._db.execute(
                "SELECT id, teleconsultation_id, room_id, created_at, not_before, attempts,"
                f" last_error FROM {OUTBOX_TABLE} WHERE id IN ({', '.join('?' * len(claimed))})",
                claimed,
            )
            rows = await cursor.fetchall()
        return [
            RoomJob(
                id=row[0],
                teleconsultation_id=row[1],
                room_id=row[2],
                created_at=_from_millis(row[3]),
                not_before=_from_millis(row[4]),
                attempts=row[5],
                last_error=row[6],
            )
            for row in rows
        ]

    async def job_backlog(self) -> tuple[int, datetime | None]:
        async with self._guard():
            cursor = await self._db.execute(f"SELECT count(*), min(created_at) FROM {OUTBOX_TABLE}")
            row = await cursor.fetchone()
        count, oldest = row or (0, None)
        return int(count), None if oldest is None else _from_millis(oldest)

    async def claim_key(
        self,
        scope: str,
        caller: str,
        fingerprint: str,
        token: str,
        now: datetime,
        expires_at: datetime,
    ) -> KeyedAnswer | None:
        claimed = await self._write(
            f"INSERT INTO {KEYS_TABLE} (scope, caller, fingerprint, token, status, body,"
            " expires_at) VALUES (?, ?, ?, ?, NULL, NULL, ?) ON CONFLICT (scope) DO UPDATE SET"
            " caller = excluded.caller, fingerprint = excluded.fingerprint,"
            " token = excluded.token, status = NULL, body = NULL,"
            f" expires_at = excluded.expires_at WHERE {KEYS_TABLE}.expires_at <= ?",
            (scope, caller, fingerprint, token, _millis(expires_at), _millis(now)),
        )
        if claimed:
            return None
        row = await self._read_one(
            f"SELECT fingerprint, status, body FROM {KEYS_TABLE} WHERE scope = ?", (scope,)
        )
        if row is None:  # expired and removed in between: claim it again
            return await self.claim_key(scope, caller, fingerprint, token, now, expires_at)
        return KeyedAnswer(fingerprint=row[0], status=row[1], body=row[2])

    async def count_keys(self, caller: str, now: datetime) -> int:
        async with self._guard():
            cursor = await self._db.execute(
                f"SELECT count(*) FROM {KEYS_TABLE} WHERE caller = ? AND expires_at > ?",
                (caller, _millis(now)),
            )
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def purge_expired_keys(self, now: datetime, limit: int) -> int:
        return await self._write(
            f"DELETE FROM {KEYS_TABLE} WHERE scope IN (SELECT scope FROM {KEYS_TABLE}"
            " WHERE expires_at <= ? LIMIT ?)",
            (_millis(now), limit),
        )

    async def finish_key(
        self, scope: str, token: str, status: int, body: str, expires_at: datetime
    ) -> None:
        await self._write(
            f"UPDATE {KEYS_TABLE} SET status = ?, body = ?, expires_at = ?"
            " WHERE scope = ? AND token = ?",
            (status, body, _millis(expires_at), scope, token),
        )

    async def release_key(self, scope: str, token: str) -> None:
        await self._write(f"DELETE FROM {KEYS_TABLE} WHERE scope = ? AND token = ?", (scope, token))

    async def count_by_state(self) -> dict[str, int]:
        async with self._guard():
            cursor = await self._db.execute(
                "SELECT json_extract(document, '$.teleconsultationState'), count(*)"
                f" FROM {self._teleconsultations} GROUP BY 1"
            )
            rows = await cursor.fetchall()
        return {str(state): int(count) for state, count in rows}

    async def ping(self) -> None:
        async with self._guard():
            await self._db.execute("SELECT 1")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        await self._db.close()
