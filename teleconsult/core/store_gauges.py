"""The gauges counted in the store, refreshed in the background so a scrape never waits.

A scrape that queried the store would hang (and time out Prometheus) exactly when
the store is in trouble, when the metrics matter most. Each replica refreshes the
counts every `REFRESH_INTERVAL`; a failed refresh keeps the last values, and
`teleconsult_store_gauges_age_seconds` says how old they are. The counts are
database-wide: every replica reports the same, so aggregate them with `max`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from teleconsult.core.clock import Clock
from teleconsult.core.domain import Phase
from teleconsult.errors import Unavailable
from teleconsult.observability.metrics import Metrics
from teleconsult.store import Store

log = logging.getLogger(__name__)

REFRESH_INTERVAL = timedelta(seconds=15)
"""Prometheus' usual scrape interval: fresher counts would cost queries nobody reads."""


class StoreGauges:
    def __init__(self, store: Store, metrics: Metrics, clock: Clock) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock

    async def refresh(self) -> None:
        """Count teleconsultations by state, the outbox backlog and the webhook deliveries; keep
        the last values
        when the store does not answer."""
        try:
            counts = await self.store.records.count_by_state()
            pending, oldest = await self.store.outbox.job_backlog()
            deliveries, failed, oldest_delivery = await self.store.webhooks.backlog()
        except Unavailable as error:
            log.debug("store gauges not refreshed: %s", error.message)
            return
        for phase in Phase:
            self.metrics.teleconsultations.labels(phase.value).set(counts.get(phase.value, 0))
        self.metrics.pending_jobs.set(pending)
        age = (self.clock() - oldest).total_seconds() if oldest else 0.0
        self.metrics.oldest_job_age.set(max(0.0, age))
        self.metrics.webhook_pending.set(deliveries)
        self.metrics.webhook_failed.set(failed)
        waited = (self.clock() - oldest_delivery).total_seconds() if oldest_delivery else 0.0
        self.metrics.webhook_oldest_pending_age.set(max(0.0, waited))
        self.metrics.store_gauges_refreshed = time.monotonic()

    async def run_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_INTERVAL.total_seconds())
