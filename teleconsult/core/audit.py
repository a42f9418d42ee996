"""The audit trail: who was handed which link or credentials, and who changed what.

An entry is written for every join link or SDK credential handed out (before it
is handed out: no entry, no link) and for every change, after it is applied.
Entries hold ids, dates, the request id, the client's address and user agent,
and the names of the fields a change touched; never a link, a token or a
person's name. They are appended, never changed, and deleted only once older
than AUDIT_RETENTION_DAYS. Only managers read them.

Entries are written with group commit: a request waits until its entry is
stored, but the entries of requests that arrive while a write is under way are
written together by the next one (one transaction, one fsync on SQLite), so
polling clients handed their links do not queue behind one sync each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from teleconsult.core.clock import Clock
from teleconsult.core.cursor import decode_cursor, keyset_page
from teleconsult.core.domain import ANONYMOUS
from teleconsult.store.audit import AuditEntry, AuditTrail
from teleconsult.store.documents import new_object_id

MAX_USER_AGENT = 256
"""A user agent is kept to this many characters: enough to tell browsers apart."""

LINK = "link_handed_out"
CREDENTIALS = "credentials_handed_out"
CREATED = "created"
UPDATED = "updated"
PARTICIPANT_ADDED = "participant_added"
CANCELLED = "cancelled"
UPLOADS_DELETED = "uploads_deleted"
ADMITTED = "participant_admitted"
DECLINED = "participant_declined"
LINK_REVOKED = "link_revoked"
REMOVED = "participant_removed"
UNBLOCKED = "participant_unblocked"
ACTIONS = (
    LINK,
    CREDENTIALS,
    CREATED,
    UPDATED,
    PARTICIPANT_ADDED,
    CANCELLED,
    UPLOADS_DELETED,
    ADMITTED,
    DECLINED,
    LINK_REVOKED,
    REMOVED,
    UNBLOCKED,
)


@dataclass(frozen=True)
class RequestTrace:
    """Where a request came from, as the audit records it."""

    request_id: str
    client_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class AuditPage:
    entries: tuple[AuditEntry, ...]
    next_cursor: str | None


class AuditLog:
    def __init__(self, trail: AuditTrail, clock: Clock, retention_days: int) -> None:
        self.trail = trail
        self.clock = clock
        self.retention = timedelta(days=retention_days)
        self._waiting: list[tuple[AuditEntry, datetime, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(
        self,
        action: str,
        teleconsultation_id: str | None,
        actor: str | None,
        trace: RequestTrace,
        *,
        participant: str | None = None,
        fields: Iterable[str] = (),
    ) -> None:
        now = self.clock()
        agent = trace.user_agent[:MAX_USER_AGENT] if trace.user_agent else None
        entry = AuditEntry(
            id=new_object_id(),
            at=now,
            action=action,
            teleconsultation_id=teleconsultation_id,
            actor=actor or ANONYMOUS,
            participant=participant,
            fields=tuple(sorted(fields)),
            request_id=trace.request_id,
            client_address=trace.client_address,
            user_agent=agent,
        )
        written = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, now + self.retention, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        await written

    async def _write_waiting(self) -> None:
        """Write what waits, in batches, until nothing does; each waiter learns its outcome."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self.trail.append([(entry, expires) for entry, expires, _ in batch])
            except Exception as error:
                outcome: Exception | None = error
            else:
                outcome = None
            for *_, written in batch:
                if written.done():
                    continue  # its request was cancelled: nobody waits
                if outcome is None:
                    written.set_result(None)
                else:
                    written.set_exception(outcome)

    async def page(self, teleconsultation_id: str, cursor: str | None, limit: int) -> AuditPage:
        after = decode_cursor(cursor) if cursor is not None else None
        found = await self.trail.entries(teleconsultation_id, after, limit + 1)
        entries, next_cursor = keyset_page(found, limit, lambda entry: (entry.at, entry.id))
        return AuditPage(entries=entries, next_cursor=next_cursor)
