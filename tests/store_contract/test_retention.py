"""What retention needs of the store: a lease one replica holds, records purged by their
dates (with the rows that index them), who is still a participant, and forgetting users."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from teleconsult.core.domain import Level, Participant, RecordState, Room, RoomSpec
from teleconsult.store.base import RecordPurge, RecordQuery, RecordWrite
from tests.store_contract.helpers import NOW, Opener, record

MINUTE = timedelta(minutes=1)
NURSE = Participant("nurse-1", ("patient",), "Ann Lee", "it", Level.BASIC, "nurse-1")


async def test_a_lease_is_held_by_one_owner_until_it_expires(open_store: Opener) -> None:
    first, second = (await open_store()).leases, (await open_store()).leases
    assert await first.take("retention", "a", NOW, NOW + 5 * MINUTE)
    assert not await second.take("retention", "b", NOW + MINUTE, NOW + 6 * MINUTE)
    assert await first.take("retention", "a", NOW + MINUTE, NOW + 6 * MINUTE)  # renewed
    assert not await second.take("retention", "b", NOW + 5 * MINUTE, NOW + 10 * MINUTE)
    assert await second.take("retention", "b", NOW + 6 * MINUTE, NOW + 11 * MINUTE)  # expired
    assert not await first.take("retention", "a", NOW + 7 * MINUTE, NOW + 12 * MINUTE)
    assert await first.take("other", "a", NOW, NOW + MINUTE)  # leases are by name


async def test_records_are_purged_by_cancellation_and_end(open_store: Opener) -> None:
    store = await open_store()
    records = store.records
    day = timedelta(days=1)
    cancelled_long_ago = record(state=RecordState.TRASH, updated_at=NOW - 40 * day)
    cancelled_lately = record(state=RecordState.TRASH, updated_at=NOW - day)
    ended_long_ago = record(
        start_date=NOW - 41 * day, end_date=NOW - 40 * day, participants=(NURSE,)
    )
    coming = record()
    for each in (cancelled_long_ago, cancelled_lately, ended_long_ago, coming):
        await records.insert(RecordWrite(each))

    trashed_30_days = RecordPurge(NOW - 30 * day, None, 10, now=NOW, rooms_due=NOW + MINUTE)
    ended_too = replace(trashed_30_days, ended_before=NOW - 30 * day)
    assert await records.purge(trashed_30_days) == [cancelled_long_ago]
    assert await records.purge(trashed_30_days) == []
    assert await records.purge(ended_too) == [ended_long_ago]
    assert await records.get_any(cancelled_long_ago.id) is None
    assert await records.get_any(cancelled_lately.id) == cancelled_lately
    everything = await records.find_page(RecordQuery(limit=10))
    assert {r.id for r in everything} == {cancelled_lately.id, coming.id}
    assert await records.find_page(RecordQuery(limit=10, participant="nurse-1")) == []
    assert await records.in_use(["doctor-1", "nurse-1", "nobody"]) == {"doctor-1"}


async def test_the_room_of_a_purged_record_is_left_to_the_reconciler(open_store: Opener) -> None:
    store = await open_store()
    day = timedelta(days=1)
    room = Room("room-1", RoomSpec((), None, False, "none"), {})
    ended = record(start_date=NOW - 41 * day, end_date=NOW - 40 * day, room=room)
    cancelled = record(state=RecordState.TRASH, updated_at=NOW - 40 * day)  # its room went
    for each in (ended, cancelled):
        await store.records.insert(RecordWrite(each))

    purged = await store.records.purge(
        RecordPurge(NOW - 30 * day, NOW - 30 * day, 10, now=NOW, rooms_due=NOW + MINUTE)
    )

    assert sorted(r.id for r in purged) == sorted([ended.id, cancelled.id])
    assert await store.outbox.job_backlog() == (1, NOW)
    assert await store.outbox.claim_jobs("a", NOW, NOW + MINUTE, 10) == []  # not due yet
    [job] = await store.outbox.claim_jobs("a", NOW + MINUTE, NOW + 2 * MINUTE, 10)
    assert (job.teleconsultation_id, job.room_id, job.attempts) == (ended.id, "room-1", 0)


async def test_purges_are_bounded(open_store: Opener) -> None:
    records = (await open_store()).records
    for _ in range(3):
        await records.insert(RecordWrite(record(state=RecordState.TRASH, updated_at=NOW)))
    two = RecordPurge(NOW + MINUTE, None, 2, now=NOW, rooms_due=NOW + MINUTE)
    assert len(await records.purge(two)) == 2
    assert len(await records.purge(two)) == 1


async def test_users_are_forgotten_for_every_provider(open_store: Opener) -> None:
    users = (await open_store()).users
    await users.add_users("fake", {"nurse-1": "n1", "doctor-1": "d1"}, "c")
    await users.add_users("livekit", {"nurse-1": "n1-lk"}, "c")
    assert await users.forget(["nurse-1", "nobody"]) == 2
    assert await users.find_user("fake", "nurse-1") is None
    assert await users.find_user("livekit", "nurse-1") is None
    assert await users.find_user("fake", "doctor-1") == "d1"
    assert await users.forget([]) == 0
