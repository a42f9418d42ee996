"""The audit trail's aggregate: its entries and protocol (`store/base.py` has the others)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class AuditEntry:
    """Who was handed a link or credentials, or changed a teleconsultation: ids, never names,
    links or tokens."""

    id: str
    at: datetime
    action: str
    teleconsultation_id: str | None
    """None for SDK credentials, which belong to no teleconsultation."""
    actor: str
    """The caller's external id (`public` when unknown)."""
    participant: str | None
    """Whose link or credentials, or who was added: an external id."""
    fields: tuple[str, ...]
    """What a change changed: field names, never values."""
    request_id: str
    client_address: str | None
    user_agent: str | None


class AuditTrail(Protocol):
    """An append-only trail: entries are added, read, and deleted only once expired."""

    async def append(self, entries: Sequence[tuple[AuditEntry, datetime]]) -> None:
        """Add entries, each with the date a store may expire it by itself (MongoDB's TTL),
        in one write (one transaction in SQLite)."""
        ...

    async def entries(
        self, teleconsultation_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        """A teleconsultation's entries, oldest first (by date, then id), after a position."""
        ...

    async def purge_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` entries written before `cutoff`; return how many went."""
        ...
