"""The outbox: room jobs leased to one replica at a time, retried, learned, finished."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from teleconsult.store.base import RoomJob
from teleconsult.store.documents import new_object_id
from tests.store_contract.helpers import NOW, Opener


async def test_outbox_jobs_are_leased_to_one_replica(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    for n in range(3):
        await first.outbox.add_job(
            RoomJob(id=new_object_id(), teleconsultation_id="t", room_id=f"room-{n}",
                    created_at=NOW, not_before=NOW + timedelta(seconds=n))
        )  # fmt: skip
    assert await first.outbox.job_backlog() == (3, NOW)
    assert await first.outbox.claim_jobs("a", NOW - timedelta(seconds=1), NOW, 10) == []

    later = NOW + timedelta(seconds=5)
    claims = await asyncio.gather(
        first.outbox.claim_jobs("a", later, later + timedelta(minutes=1), 10),
        second.outbox.claim_jobs("b", later, later + timedelta(minutes=1), 10),
    )
    rooms = [str(job.room_id) for batch in claims for job in batch]
    assert sorted(rooms) == ["room-0", "room-1", "room-2"]  # each job leased once

    job = claims[0][0] if claims[0] else claims[1][0]
    await first.outbox.retry_job(job.id, later + timedelta(seconds=30), "HTTP 500")
    assert await second.outbox.claim_jobs("b", later, later, 10) == []  # leased or waiting
    expired = later + timedelta(minutes=2)
    retried = await second.outbox.claim_jobs("b", expired, expired + timedelta(minutes=1), 10)
    assert len(retried) == 3  # leases ran out: every job is due again
    again = next(j for j in retried if j.id == job.id)
    assert (again.attempts, again.last_error) == (1, "HTTP 500")

    for leased in retried:
        await second.outbox.finish_job(leased.id)
    assert await first.outbox.job_backlog() == (0, None)


async def test_a_job_learns_its_room(open_store: Opener) -> None:
    store = await open_store()
    job = RoomJob(new_object_id(), "t", None, NOW, NOW)
    await store.outbox.add_job(job)
    await store.outbox.set_job_room(job.id, "room-9")
    [claimed] = await store.outbox.claim_jobs("a", NOW, NOW + timedelta(minutes=1), 10)
    assert claimed.room_id == "room-9"
