"""The reconciler: finishes, in every replica, the room work that requests could not.

Each outbox job names a room that may have lost its record (see
`store.base.RoomJob`). A replica leases a batch of due jobs (a conditional
update per job, so one replica does each), then for each job deletes the room
unless the teleconsultation's live record still points to it, with the same
`RoomJobs.settle` a request uses. A failed deletion is retried with exponential
backoff; a lease that expires (a replica that died mid-job) frees the job for
another replica. Jobs live in the store, so they survive restarts. Each pass also
deletes providers' expired data, a bounded batch at a time, and runs the retention
pass (`core.retention`: leased, so one replica does it), which deletes expired
idempotency keys among the rest. A video provider whose media server may forget its rooms
(`RoomRepair`: Janus, restarted) is asked at every pass to make its live rooms again; it may
do so on several replicas at once, and a failure is tried again next pass (a warning when
it starts, an info line when it ends).
Each repair is an event line ("room deleted" with the reason `orphan` or `retry`, "provider
rooms made again", "expired provider data purged", the retention pass's counts); a store
that stays unavailable is logged when it starts and when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from teleconsult.core.clock import Clock
from teleconsult.core.domain import RecordState
from teleconsult.core.outbox import LEASE, RoomJobs, backoff
from teleconsult.core.retention import Retention
from teleconsult.errors import ProviderError, Unavailable
from teleconsult.observability import logs
from teleconsult.observability.metrics import Metrics
from teleconsult.providers import outbound
from teleconsult.providers.live import RoomRepair
from teleconsult.store.base import RoomJob, Store

log = logging.getLogger(__name__)

BATCH = 20
PURGE_BATCH = 500
"""Expired idempotency keys deleted per statement: each delete is short, so requests that
write meanwhile never wait long."""


@dataclass(eq=False)
class Reconciler:
    """Each pass: the outbox's due room jobs, the provider's rooms to repair (`rooms`), the
    store's purges and retention (`retention`), leased so one replica does each at a time."""

    store: Store
    jobs: RoomJobs
    clock: Clock
    metrics: Metrics
    retention: Retention | None = None
    rooms: RoomRepair | None = None
    owner: str = field(default_factory=lambda: uuid.uuid4().hex, init=False)
    """This replica, for leases."""

    def __post_init__(self) -> None:
        self._outage = logs.Outage(
            log, "reconciler: the store is unavailable", "reconciler: the store answers again"
        )
        self._repair_outage = logs.Outage(
            log,
            "reconciler: the video provider's rooms could not be repaired (each pass tries again)",
            "reconciler: the video provider's rooms are repaired again",
        )

    async def run_once(self) -> int:
        """Lease and process one batch of due jobs; return how many were processed."""
        now = self.clock()
        jobs = await self.store.outbox.claim_jobs(self.owner, now, now + LEASE, BATCH)
        for job in jobs:
            await self._process(job)
        return len(jobs)

    async def purge_expired_keys(self) -> int:
        """Delete expired idempotency keys, a bounded batch at a time; return how many went."""
        return await self._purge(
            self.store.idempotency.purge_expired_keys, "expired idempotency keys purged"
        )

    async def purge_provider_data(self) -> int:
        """Delete providers' expired documents and messages, a bounded batch at a time."""
        return await self._purge(
            self.store.provider_data.purge_expired, "expired provider data purged"
        )

    async def _purge(self, batch_of: Callable[[datetime, int], Awaitable[int]], event: str) -> int:
        """Purge in batches; one event line when anything went (a pass that finds nothing
        says nothing)."""
        purged = 0
        while (batch := await batch_of(self.clock(), PURGE_BATCH)) > 0:
            purged += batch
            if batch < PURGE_BATCH:
                break
            await asyncio.sleep(0)  # let requests run between batches
        if purged:
            logs.event(log, event, count=purged)
        return purged

    async def repair_rooms(self) -> int:
        """Ask the video provider to make again the live rooms its server lost; return how
        many it made. Its failure is a warning when it starts (its message names the
        operation, never a token or a link), debug while it lasts, and left to the next pass:
        the rest of this pass runs all the same."""
        if self.rooms is None:
            return 0
        try:
            with outbound.deadline(LEASE.total_seconds() / 2):
                made = await self.rooms.repair_rooms()
        except ProviderError as error:
            self._repair_outage.failed(error.message, operation=error.operation, kind=error.kind)
            return 0
        self._repair_outage.recovered()
        if made:
            logs.event(log, "provider rooms made again", count=made)
        return made

    async def run_pass(self) -> None:
        """One pass: every due job, the provider's lost rooms, then providers' expired data,
        then retention."""
        while await self.run_once() == BATCH:
            pass  # a full batch: there may be more due now
        await self.repair_rooms()
        await self.purge_provider_data()
        if self.retention is not None:
            await self.retention.run_once()
        else:
            await self.purge_expired_keys()

    async def run_forever(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.run_pass()
            except Unavailable as error:
                self._outage.failed(error.message)
            except Exception:
                log.exception("reconciler: unexpected error; it will try again")
            else:
                self._outage.recovered()
            await asyncio.sleep(interval_seconds)

    async def _process(self, job: RoomJob) -> None:
        if job.room_id is None:
            # The room's creation was interrupted, or answered, without the provider naming
            # the room: nothing can delete it (docs/operations.md, "Limits"). Counted as
            # `unknown_room`, so an operator can look for it on the provider.
            log.warning(
                "reconciler: teleconsultation %s: a provider room may have been left "
                "(its creation gave no room id); job %s dropped",
                job.teleconsultation_id, job.id,
                extra={"fields": {"teleconsultationId": job.teleconsultation_id, "jobId": job.id}},
            )  # fmt: skip
            await self._done(job, "unknown_room")
            return
        record = await self.store.records.get_any(job.teleconsultation_id)
        if (
            record is not None
            and record.state is RecordState.PUBLIC
            and record.room is not None
            and record.room.provider_room_id == job.room_id
        ):
            log.debug(
                "reconciler: provider room %s is still its teleconsultation's; job closed",
                job.room_id,
            )
            await self._done(job, "in_use")
            return
        # No caller waits here: a rate limit's longer wait is honoured by the job's next date.
        # `retry`: a request (or an earlier pass) tried and failed; `orphan`: nobody tried.
        why = "retry" if job.attempts else "orphan"
        with outbound.deadline(LEASE.total_seconds() / 2):
            deleted = await self.jobs.settle(
                job, job.room_id, why, retry_after=backoff(job.attempts)
            )
        self.metrics.jobs_done.labels("deleted" if deleted else "retry").inc()

    async def _done(self, job: RoomJob, outcome: str) -> None:
        await self.store.outbox.finish_job(job.id)
        self.metrics.jobs_done.labels(outcome).inc()
