"""The outbox bookkeeping around a room: what may orphan a room is written down first.

A room job means "room R of teleconsultation T may have lost its record". A
request opens one before each step that could orphan a room (creating one,
replacing one, cancelling), and settles it itself: it closes the job when the
room is the record's, or deletes the room and then closes it. What a request
cannot finish (the provider failed, the process died) the reconciler finishes,
in every replica, with the same `settle`. The timing rules of both live here.
Each room deleted is one "room deleted" event line, with the reason it went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

from teleconsult.core.clock import Clock
from teleconsult.errors import ProviderError, ServiceError, Unavailable
from teleconsult.observability import logs
from teleconsult.providers.protocols import VideoProvider
from teleconsult.store.base import Outbox, RoomJob
from teleconsult.store.documents import new_object_id

log = logging.getLogger(__name__)
T = TypeVar("T")

JOB_GRACE = timedelta(minutes=2)
"""How long a job belongs to the request that wrote it before the reconciler may take it:
longer than any request can take (provider timeouts times attempts)."""
COMMIT_DEADLINE = timedelta(minutes=1)
"""The most a change's provider calls and write may take: well inside JOB_GRACE, so the
reconciler never judges a room while its request may still write."""
RETRY_DELAY = timedelta(seconds=10)
"""When a request could not delete a room itself, how soon the reconciler tries."""
LEASE = timedelta(minutes=1)
"""How long a replica holds a job it took; a replica that died frees it after this."""
MAX_BACKOFF = timedelta(minutes=10)
UNANNOUNCED = frozenset({"lost_race", "untracked", "late_answer"})
"""Why a room no record ever pointed to goes (made for an attempt that lost its write, whose
job lost track of it, or whose creation answered after its request gave up): its creation
was never announced, so its deletion is logged at debug only."""


def backoff(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s ... up to 10 minutes between the reconciler's attempts at one job."""
    return min(RETRY_DELAY * (1 << min(attempts, 16)), MAX_BACKOFF)


class RoomJobs:
    """Opens, closes and settles room jobs in the outbox."""

    def __init__(self, outbox: Outbox, video: VideoProvider, clock: Clock) -> None:
        self.outbox = outbox
        self.video = video
        self.clock = clock
        self._following: set[asyncio.Task[None]] = set()

    async def open(self, teleconsultation_id: str, room_id: str | None) -> RoomJob:
        """A job, written before the step that could orphan the room; the reconciler leaves
        it to this request for JOB_GRACE. `room_id` is None before a creation, unless the
        provider takes the name we choose (`NamedRooms`): then it is that name, so the
        reconciler finds the room even when the creation's answer is lost."""
        now = self.clock()
        job = RoomJob(
            id=new_object_id(),
            teleconsultation_id=teleconsultation_id,
            room_id=room_id,
            created_at=now,
            not_before=now + JOB_GRACE,
        )
        await self.outbox.add_job(job)
        return job

    async def open_during(
        self, teleconsultation_id: str, work: Awaitable[T], room_id: str | None = None
    ) -> tuple[RoomJob, T]:
        """A creation's job (as `open(teleconsultation_id, room_id)`), written while `work` runs:
        the work that comes before the room's creation (its users'), so the job's commit is
        off the request's way. Still written before the room's creation starts; closed
        again if `work` fails or is cancelled (no room was created). The caller's deadline
        must cover `work` too: the job's grace runs from its opening."""
        opening = asyncio.create_task(self.open(teleconsultation_id, room_id))
        try:
            result = await work
        except BaseException:
            with contextlib.suppress(Exception):  # work's error is the answer
                await self.close(await opening)
            raise
        return await opening, result

    async def learn_room(self, job: RoomJob, room_id: str) -> None:
        """Record the room a creation made. If the job cannot learn it, delete the room now,
        while its id is known: nothing else could find it. A job that carried the name
        from the start knows it already."""
        if job.room_id == room_id:
            return
        try:
            await self.outbox.set_job_room(job.id, room_id)
        except BaseException:
            await self.settle(job, room_id, "untracked")
            raise

    def follow(self, job: RoomJob, late_id: Awaitable[str | None]) -> None:
        """A creation that timed out, whose answer is still read (`ProviderError.late_id`):
        the room it names when it comes is learned, then deleted (`late_answer`), since its
        request has failed. Its job covers it meanwhile; an answer that never comes leaves
        the job to the reconciler, as before. Read in this replica only until the request's
        deadline, well inside the job's grace."""

        async def settle_late() -> None:
            try:
                room_id = await late_id
                if room_id is not None:
                    await self.learn_room(job, room_id)
                    await self.settle(replace(job, room_id=room_id), room_id, "late_answer")
            except Exception as error:  # the job stays: the reconciler finishes it
                log.warning("could not settle a late room answer of job %s: %r", job.id, error)

        task = asyncio.ensure_future(settle_late())
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def followed(self, cancel: bool = False) -> None:
        """Wait until every late answer followed is settled; `cancel` (at shutdown): stop
        reading them first (their jobs stay, for the reconciler)."""
        for task in self._following if cancel else ():
            task.cancel()
        await asyncio.gather(*self._following, return_exceptions=True)

    async def close(self, job: RoomJob) -> None:
        """The room is the record's (or was deleted): the job is done."""
        try:
            await self.outbox.finish_job(job.id)
        except Unavailable as error:  # the reconciler will find the room still in use
            log.warning("could not close outbox job %s: %s", job.id, error.message)

    async def settle(
        self, job: RoomJob, room_id: str, why: str, retry_after: timedelta = RETRY_DELAY
    ) -> bool:
        """Delete a room no record needs and close its job; return whether it went.

        `why` is the reason the event line gives: `cancelled`, `replaced`,
        `no_longer_needed` (its teleconsultation waits for a participant again), `lost_race`,
        `untracked`, and the reconciler's `orphan` and `retry`. A deletion that fails
        leaves the job, due again after `retry_after`: the change that made the room an
        orphan stands (or its own error wins).
        """
        fields = {
            "teleconsultationId": job.teleconsultation_id,
            "providerRoomId": room_id,
            "reason": why,
            "attempt": job.attempts + 1,
        }
        try:
            await self.video.delete_room(room_id)
        except Exception as error:
            detail = error.message if isinstance(error, ServiceError) else type(error).__name__
            if isinstance(error, ProviderError) and error.retry_after:  # the provider said when
                retry_after = max(retry_after, timedelta(seconds=error.retry_after))
            log.warning(
                "could not delete provider room %s (%s, attempt %d): %s",
                room_id, why, job.attempts + 1, detail, extra={"fields": fields},
            )  # fmt: skip
            # If the store fails too, the job stays as written: taken after its grace.
            with contextlib.suppress(Unavailable):
                await self.outbox.retry_job(job.id, self.clock() + retry_after, detail)
            return False
        if why in UNANNOUNCED:
            log.debug("room deleted", extra={"fields": fields})
        else:
            logs.event(log, "room deleted", **fields)
        await self.close(job)
        return True
