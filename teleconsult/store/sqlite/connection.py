"""One SQLite file, no server to run: the connection every aggregate of the embedded store shares.

Each write is one statement in its own IMMEDIATE transaction, so compare-and-set
is one atomic `UPDATE ... WHERE version = ?`; WAL mode lets several processes
share the file. Reads by key run on a read-only connection of the event loop's
own thread (microseconds, and WAL readers never wait for writers); writes and
scans go through aiosqlite's thread, one at a time.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiosqlite

from teleconsult.errors import Unavailable
from teleconsult.store.budget import store_call

T = TypeVar("T")
SCHEME = "sqlite://"
SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA"}
"""SQLITE_SYNCHRONOUS. In WAL mode, FULL syncs the log at every commit: an acknowledged write
survives a power failure. NORMAL syncs at checkpoints only: it survives a crash of the
process, but a power failure may lose the last commits (docs/operations.md, Security)."""


DEFAULT_BUSY_TIMEOUT_MS = 5000
"""SQLITE_BUSY_TIMEOUT_MS's default, for a file opened without settings (tests, tools)."""
BUSY_STEP_MS = 100
"""busy_timeout is set in steps this long: a request's first write, with its whole budget,
runs no extra statement."""
BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
"""Another connection holds the lock this statement needs."""


Statement = tuple[str, Iterable[object]]
"""One SQL statement and its parameters."""


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
    if not url.startswith(SCHEME + "/") or url == SCHEME + "/":
        raise ValueError("use sqlite:///<path>, for example sqlite:///teleconsult.db")
    return url[len(SCHEME) + 1 :]


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def encode(document: dict[str, Any]) -> str:
    return json.dumps(document, default=_encode_value, separators=(",", ":"))


def _encode_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


MAX_PARAMETERS = 500
"""Values bound in one `IN (...)`: well under SQLite's limit on parameters."""


def chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """`values` in slices small enough for one `IN (...)` each."""
    for start in range(0, len(values), MAX_PARAMETERS):
        yield values[start : start + MAX_PARAMETERS]


def quoted(name: str) -> str:
    """A table or index name, quoted (names come from settings checked against [A-Za-z0-9_-])."""
    return f'"{name}"'


class SQLiteConnection:
    """The file's connections, and the health part of the store (`ping`, `close`)."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        reader: sqlite3.Connection | None,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self._db = db
        self._reader = reader
        self._lock = asyncio.Lock()  # aiosqlite runs one statement at a time per connection
        self._timeout = busy_timeout_ms / 1000
        self._busy_ms = busy_timeout_ms
        """The connection's busy_timeout now (set before each write to what is left)."""

    @classmethod
    async def open(
        cls, url: str, synchronous: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> SQLiteConnection:
        """Open the file (created if missing), in WAL mode with `synchronous`; a request's
        calls together wait at most `busy_timeout_ms` for another process's write lock."""
        path = sqlite_path(url)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # Try the file first: a failed aiosqlite.connect leaves its worker thread to
                # report to an event loop that may be closed by then (a stray traceback).
                await asyncio.to_thread(_try_open, path)
            db = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        except (OSError, sqlite3.Error) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise Unavailable(f"Cannot open the SQLite store at {path}: {reason}.") from None
        connection = cls(db, None, busy_timeout_ms)
        try:
            await connection._prepare(synchronous)
            if path != ":memory:":  # a second connection to :memory: would be another database
                connection._reader = _reader(path)
        except (Unavailable, sqlite3.Error) as error:
            await db.close()
            if isinstance(error, Unavailable):
                raise
            raise Unavailable(f"Cannot open the SQLite store at {path}: {error}.") from None
        return connection

    async def _prepare(self, synchronous: str) -> None:
        async with self.guard() as db:
            await db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute(f"PRAGMA synchronous={SYNCHRONOUS[synchronous]}")

    async def create_schema(self, aggregates: Iterable[object]) -> None:
        """Create the tables of each SQLite aggregate among `aggregates` (the connection
        itself is one too); close the connection if one fails."""
        tables = [part for part in aggregates if isinstance(part, SQLiteTable)]
        try:
            async with self.guard() as db:
                for table in tables:
                    await table.create_schema(db)
        except Unavailable:
            await self.close()
            raise

    @asynccontextmanager
    async def guard(self, seconds: float | None = None) -> AsyncIterator[aiosqlite.Connection]:
        """One operation at a time on the connection, the turn awaited at most `seconds`
        (the request's budget; None: as long as it takes); SQLite errors become 503s."""
        if seconds is not None and seconds <= 0:
            raise _locked()
        try:
            async with asyncio.timeout(seconds):
                await self._lock.acquire()
        except TimeoutError:
            raise _locked() from None
        try:
            yield self._db
        except sqlite3.Error as error:
            if isinstance(error, sqlite3.OperationalError) and error.sqlite_errorname in BUSY:
                raise _locked() from None
            raise Unavailable(f"The SQLite store failed: {error}.") from None
        finally:
            self._lock.release()

    async def write(self, sql: str, parameters: Iterable[object]) -> int:
        """Run one write in its own IMMEDIATE transaction and return the rows it changed.

        IMMEDIATE takes the write lock first, waiting (busy_timeout) for other
        processes, so the statement always runs on the newest data: without it,
        WAL mode answers "database is locked" at once when another process wrote
        since this connection last read. The transaction is shielded: a request
        cancelled mid-write lets it finish, so its outcome is never a guess.
        """
        parameters = tuple(parameters)

        async def one(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(sql, parameters)
            return cursor.rowcount

        return await self.transaction(one)

    async def transaction(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run several statements as one IMMEDIATE transaction, shielded like `write`: a record
        and the rows that index it are written together or not at all. It waits for the
        write lock at most what the request's budget leaves (`store.budget`)."""
        with store_call(self._timeout) as seconds:
            return await asyncio.shield(self._in_transaction(work, seconds))

    async def write_together(self, statements: Sequence[Statement]) -> int:
        """Run writes in one transaction, shielded like `write`: the first must change a row
        (a compare-and-set), else nothing else is run. Return the rows the first changed."""

        (sql, parameters), *rest = statements

        async def together(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(sql, tuple(parameters))
            if cursor.rowcount:
                await run_all(db, rest)
            return cursor.rowcount

        return await self.transaction(together)

    async def _in_transaction(
        self, work: Callable[[aiosqlite.Connection], Awaitable[T]], seconds: float
    ) -> T:
        started = time.monotonic()
        async with self.guard(seconds) as db:
            await self._wait_at_most(db, seconds - (time.monotonic() - started))
            await db.execute("BEGIN IMMEDIATE")
            try:
                result = await work(db)
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            return result

    async def _wait_at_most(self, db: aiosqlite.Connection, seconds: float) -> None:
        """busy_timeout to `seconds`, in steps of BUSY_STEP_MS rounded up, so a request's
        first write (and most of its others) changes nothing."""
        busy_ms = max(1, math.ceil(seconds * 1000 / BUSY_STEP_MS)) * BUSY_STEP_MS
        busy_ms = min(busy_ms, math.ceil(self._timeout * 1000))
        if busy_ms != self._busy_ms:
            await db.execute(f"PRAGMA busy_timeout={busy_ms}")
            self._busy_ms = busy_ms

    async def read_one(self, sql: str, parameters: Iterable[object]) -> Any:
        """One row by key, on the event loop's own connection when there is one."""
        if self._reader is None:
            rows = await self.read_all(sql, parameters)
            return rows[0] if rows else None
        try:
            return self._reader.execute(sql, tuple(parameters)).fetchone()
        except sqlite3.Error as error:
            raise Unavailable(f"The SQLite store failed: {error}.") from None

    async def read_few(self, sql: str, parameters: Iterable[object]) -> list[Any]:
        """The few rows (a LIMIT) of a query by an indexed key, on the event loop's own
        connection when there is one, like `read_one`."""
        if self._reader is None:
            return await self.read_all(sql, parameters)
        try:
            return self._reader.execute(sql, tuple(parameters)).fetchall()
        except sqlite3.Error as error:
            raise Unavailable(f"The SQLite store failed: {error}.") from None

    async def read_all(self, sql: str, parameters: Iterable[object] = ()) -> list[Any]:
        """Every row of a query, through aiosqlite's thread (scans may take a while), its turn
        on the connection awaited at most what the request's budget leaves."""
        with store_call(self._timeout) as seconds:
            async with self.guard(seconds) as db:
                cursor = await db.execute(sql, tuple(parameters))
                return list(await cursor.fetchall())

    async def ping(self) -> None:
        await self.read_all("SELECT 1")

    async def close(self) -> None:
        """After the operation in progress, and any already waiting: a shielded write whose
        caller was cancelled (a provider's, at a quick stop) still finishes."""
        async with self._lock:
            if self._reader is not None:
                self._reader.close()
            await self._db.close()


def _locked() -> Unavailable:
    return Unavailable(
        "The SQLite store stayed locked by another writer for the request's "
        "SQLITE_BUSY_TIMEOUT_MS; retry later.",
        retry_after=1,
    )


async def add_missing_columns(
    db: aiosqlite.Connection, table: str, columns: Sequence[tuple[str, str]]
) -> None:
    """Add each (name, type) column `table` lacks: a file written by an older version gets the
    columns added since (SQLite has no `ADD COLUMN IF NOT EXISTS`)."""
    cursor = await db.execute(f"PRAGMA table_info({table})")
    present = {row[1] for row in await cursor.fetchall()}
    for column, kind in columns:
        if column not in present:
            await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


@dataclass(frozen=True)
class TableSchema:
    """A table's definition: its `columns`, its `indexes` (name → indexed columns; `{table}`
    in a name stands for the table's), and the columns `added` since its first version."""

    columns: str
    indexes: Mapping[str, str] = field(default_factory=dict)
    added: Sequence[tuple[str, str]] = ()

    async def create(self, db: aiosqlite.Connection, table: str) -> None:
        """Make the table and its indexes unless they exist; an older file gets the `added`
        columns (`add_missing_columns`) before the indexes that may need them."""
        quoted_table = quoted(table)
        await db.execute(f"CREATE TABLE IF NOT EXISTS {quoted_table} ({self.columns})")
        await add_missing_columns(db, quoted_table, self.added)
        for name, indexed in self.indexes.items():
            index = quoted(name.format(table=table))
            await db.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {quoted_table} ({indexed})")


class SQLiteTable:
    """One aggregate's table on the shared connection (`NAME` unless the store is told
    another), declared by its `SCHEMA`; `create_schema` makes it, idempotently (a table
    with more than one overrides it)."""

    NAME: ClassVar[str]
    SCHEMA: ClassVar[TableSchema]

    def __init__(self, connection: SQLiteConnection, table: str | None = None) -> None:
        self._connection = connection
        self._name = table or self.NAME
        self._table = quoted(self._name)

    async def create_schema(self, db: aiosqlite.Connection) -> None:
        await self.SCHEMA.create(db, self._name)


def _reader(path: str) -> sqlite3.Connection:
    """A read-only connection for the event loop's own thread."""
    # WAL readers do not wait for writers; the short timeout only bounds the rare wait
    # (a checkpoint), since this connection blocks the event loop while it waits.
    connection = sqlite3.connect(path, isolation_level=None, timeout=0.25)
    connection.execute("PRAGMA query_only = 1")
    return connection


def _try_open(path: str) -> None:
    sqlite3.connect(path).close()


async def run_all(db: aiosqlite.Connection, statements: Iterable[Statement]) -> None:
    """Run every one of `statements` in the open transaction."""
    for sql, parameters in statements:
        await db.execute(sql, tuple(parameters))
