"""Retention: what is deleted for good, and when, by one replica at a time.

Each reconciler pass asks; at most once a minute per replica, and only in the
replica that holds the `retention` lease (taken with one conditional write, held
for LEASE and renewed by its holder, so another takes over when a replica dies),
it deletes, a bounded batch at a time:
- cancelled teleconsultations RETENTION_TRASHED_DAYS after their cancellation,
  and, when RETENTION_ENDED_DAYS is set, the others that many days after their end,
  each with an outbox job for its room (written with the deletion), so the reconciler
  deletes the room from the provider too (what a provider keeps never outlives its
  teleconsultation);
- the user-map entries of their participants that no remaining teleconsultation
  has (a participant seen again later is simply mapped again: ids are derived);
- audit entries older than AUDIT_RETENTION_DAYS;
- expired idempotency keys;
- webhook deliveries (their payloads) WEBHOOK_RETENTION_DAYS after they failed, and
  delivered or withdrawn ones after WEBHOOK_MAX_AGE_MS (when shorter): here rather than
  in the deliverers, which do not run without an endpoint.
Each kind is counted in `teleconsult_retention_purged` and logged as counts only.
MongoDB also expires audit entries and idempotency keys by itself (TTL indexes);
records are not left to a TTL index, since their user-map entries must follow.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from teleconsult.core.clock import Clock
from teleconsult.core.outbox import JOB_GRACE
from teleconsult.observability.metrics import Metrics
from teleconsult.store.base import RecordPurge, Store

log = logging.getLogger(__name__)

LEASE_NAME = "retention"
LEASE = timedelta(minutes=5)
EVERY = timedelta(minutes=1)
BATCH = 500
"""Rows per delete: each is a short transaction, so requests never wait long."""
MAX_BATCHES = 20
"""Batches of each kind per pass: a large backlog is worked off over several passes."""


@dataclass(frozen=True)
class RetentionPolicy:
    trashed: timedelta
    ended: timedelta | None
    """None: ended teleconsultations are kept."""
    audit: timedelta
    webhooks_failed: timedelta
    """How long a failed webhook delivery is kept (for a retry), from when it failed."""
    webhooks_done: timedelta
    """How long a delivered or withdrawn one is kept, from when it finished."""


class Retention:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        policy: RetentionPolicy,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.policy = policy
        self.owner = owner or uuid.uuid4().hex
        self._next: datetime | None = None

    async def run_once(self) -> dict[str, int] | None:
        """Purge what is due, if it is time and this replica holds the lease; return the
        counts, or None when it was another replica's turn (or too soon)."""
        now = self.clock()
        if self._next is not None and now < self._next:
            return None
        self._next = now + EVERY
        if not await self.store.leases.take(LEASE_NAME, self.owner, now, now + LEASE):
            return None
        teleconsultations, user_map = await self._teleconsultations(now)
        counts = {
            "teleconsultations": teleconsultations,
            "user_map": user_map,
            "audit_entries": await _in_batches(
                lambda limit: self.store.audit.purge_before(now - self.policy.audit, limit)
            ),
            "idempotency_keys": await _in_batches(
                lambda limit: self.store.idempotency.purge_expired_keys(now, limit)
            ),
            "webhook_deliveries": await _in_batches(
                lambda limit: self.store.webhooks.purge(
                    now - self.policy.webhooks_done, now - self.policy.webhooks_failed, limit
                )
            ),
        }
        for kind, count in counts.items():
            self.metrics.retention_purged.labels(kind).inc(count)
        if any(counts.values()):
            log.info("retention: purged %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
        return counts

    async def _teleconsultations(self, now: datetime) -> tuple[int, int]:
        """Delete the due records, then the user-map entries nobody else uses."""
        ended = now - self.policy.ended if self.policy.ended is not None else None
        deleted = forgotten = 0
        for _ in range(MAX_BATCHES):
            batch = await self.store.records.purge(
                RecordPurge(
                    now - self.policy.trashed, ended, BATCH, now=now, rooms_due=now + JOB_GRACE
                )
            )
            deleted += len(batch)
            participants = sorted({p.external_id for r in batch for p in r.participants})
            used = await self.store.records.in_use(participants) if participants else set()
            unused = [external_id for external_id in participants if external_id not in used]
            forgotten += await self.store.users.forget(unused) if unused else 0
            if len(batch) < BATCH:
                break
            await asyncio.sleep(0)  # let requests run between batches
        return deleted, forgotten


async def _in_batches(batch_of: Callable[[int], Awaitable[int]]) -> int:
    purged = 0
    for _ in range(MAX_BATCHES):
        count = await batch_of(BATCH)
        purged += count
        if count < BATCH:
            break
        await asyncio.sleep(0)
    return purged
