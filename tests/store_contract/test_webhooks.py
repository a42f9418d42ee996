"""Webhook deliveries: written with their record or not at all, leased one at a time per
endpoint and teleconsultation in order, moved by later versions, retried, failed, purged."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from teleconsult.errors import VersionConflict
from teleconsult.store import Store
from teleconsult.store.base import Delivery, DeliveryStatus, RecordWrite
from tests.store_contract.helpers import NOW, Opener, record

LEASE = NOW + timedelta(minutes=1)
DAY = timedelta(days=1)


def delivery(
    teleconsultation_id: str, n: int, endpoint: str = "a", version: int = 1, **changes: Any
) -> Delivery:
    event_id = changes.pop("event_id", f"evt_{teleconsultation_id}_{version}_{n}")
    due = changes.pop("due_at", NOW)
    base = Delivery(
        id=f"{endpoint}.{event_id}",
        event_id=event_id,
        endpoint=endpoint,
        teleconsultation_id=teleconsultation_id,
        type="teleconsultation.created",
        payload={"type": "teleconsultation.created", "data": {"n": n}},
        due_at=due,
        seq=version * 10 + n,
        version=version,
        status=DeliveryStatus.PENDING,
        next_at=due,
        deadline=due + DAY,
    )
    return replace(base, **changes)


async def claim(store: Store, owner: str = "a", now: Any = NOW, limit: int = 10) -> list[str]:
    await store.webhooks.relay(100)
    claimed = await store.webhooks.claim(owner, now, now + timedelta(minutes=1), limit)
    return sorted(d.id for d in claimed)


async def test_deliveries_go_one_at_a_time_per_endpoint_and_teleconsultation(
    open_store: Opener,
) -> None:
    first, second = await open_store(), await open_store()
    one, two = record(), record()
    d1, d2, d3 = delivery(one.id, 0), delivery(one.id, 1), delivery(one.id, 0, endpoint="b")
    await first.records.insert(RecordWrite(one, deliveries=[d1, d2, d3]))
    await first.records.insert(RecordWrite(two, deliveries=[delivery(two.id, 0)]))
    assert await first.webhooks.relay(100) in (0, 2)  # SQLite wrote them in place
    assert await first.webhooks.backlog() == (4, 0, NOW)

    assert await claim(first) == sorted([d1.id, d3.id, f"a.evt_{two.id}_1_0"])
    assert await claim(second, "b") == []  # leased, or behind a leased one
    [leased] = [d for d in [await first.webhooks.get(d1.id)] if d is not None]
    assert leased.payload == {"type": "teleconsultation.created", "data": {"n": 0}}

    assert await second.webhooks.delivered(d1.id, "b", 1, NOW) is False  # not its lease
    assert await first.webhooks.delivered(d1.id, "a", 1, NOW) is True
    assert await claim(second, "b") == [d2.id]  # the next in its queue
    assert await first.webhooks.backlog() == (3, 0, NOW)


async def test_a_write_that_loses_compare_and_set_writes_no_delivery(open_store: Opener) -> None:
    store = await open_store()
    original = record()
    await store.records.insert(RecordWrite(original))
    await store.records.replace(
        RecordWrite(
            replace(original, version=2), 1, deliveries=[delivery(original.id, 0, version=2)]
        )
    )
    with pytest.raises(VersionConflict):
        await store.records.replace(
            RecordWrite(
                replace(original, version=2), 1, deliveries=[delivery(original.id, 1, version=2)]
            )
        )
    assert await claim(store) == [f"a.evt_{original.id}_2_0"]
    assert await store.webhooks.backlog() == (1, 0, NOW)


async def test_a_later_version_moves_or_withdraws_a_pending_delivery(open_store: Opener) -> None:
    store = await open_store()
    tc = record()
    links = f"evt_{tc.id}_links"

    def at(version: int, hours: int, status: DeliveryStatus = DeliveryStatus.PENDING) -> Delivery:
        due = NOW + timedelta(hours=hours)
        return delivery(tc.id, 0, version=version, event_id=links, due_at=due, status=status)

    await store.records.insert(RecordWrite(tc, deliveries=[at(1, 3)]))
    await store.records.replace(RecordWrite(replace(tc, version=2), 1, deliveries=[at(2, 5)]))
    await store.records.replace(
        RecordWrite(replace(tc, version=3), 2, deliveries=[at(3, 4, DeliveryStatus.DROPPED)])
    )
    await store.webhooks.relay(100)
    await store.webhooks.relay(100)  # a relay repeated changes nothing
    dropped = await store.webhooks.get(f"a.{links}")
    assert dropped is not None
    assert (dropped.status, dropped.version) == (DeliveryStatus.DROPPED, 3)

    await store.records.replace(RecordWrite(replace(tc, version=4), 3, deliveries=[at(4, 2)]))
    assert await claim(store, now=NOW + timedelta(hours=1)) == []  # not due yet
    assert await claim(store, now=NOW + timedelta(hours=2)) == [f"a.{links}"]
    # A rewrite while it is being sent: the sender's "delivered" does not count.
    await store.records.replace(RecordWrite(replace(tc, version=5), 4, deliveries=[at(5, 2)]))
    await store.webhooks.relay(100)
    assert await store.webhooks.delivered(f"a.{links}", "a", 4, NOW) is False
    later = NOW + timedelta(hours=3)
    [again] = await store.webhooks.claim("b", later, later + timedelta(minutes=1), 10)
    assert (again.version, again.due_at) == (5, NOW + timedelta(hours=2))
    assert await store.webhooks.delivered(again.id, "b", 5, later) is True

    # Once delivered, it is final: a later version changes nothing.
    await store.records.replace(
        RecordWrite(replace(tc, version=6), 5, deliveries=[at(6, 9, DeliveryStatus.DROPPED)])
    )
    await store.webhooks.relay(100)
    final = await store.webhooks.get(f"a.{links}")
    assert final is not None
    assert (final.status, final.version) == (DeliveryStatus.DELIVERED, 5)


async def test_a_retried_delivery_holds_its_queue_then_fails_and_is_retried(
    open_store: Opener,
) -> None:
    store = await open_store()
    tc = record()
    first, second = delivery(tc.id, 0), delivery(tc.id, 1)
    await store.records.insert(RecordWrite(tc, deliveries=[first, second]))
    assert await claim(store) == [first.id]
    retry_at = NOW + timedelta(seconds=30)
    assert await store.webhooks.retry_later(first.id, "a", 1, retry_at, "HTTP 500") is True
    assert await claim(store, now=NOW + timedelta(seconds=29)) == []  # the queue waits
    assert await claim(store, now=retry_at) == [first.id]

    assert await store.webhooks.fail(first.id, "a", 1, retry_at, "HTTP 503") is True
    [failed] = await store.webhooks.list_failed(10)
    assert (failed.id, failed.attempts, failed.last_error) == (first.id, 2, "HTTP 503")
    assert failed.finished_at == retry_at
    assert await store.webhooks.backlog() == (1, 1, NOW)
    assert await claim(store, now=retry_at) == [second.id]  # the queue goes on

    assert await store.webhooks.retry_failed("a.nothing", retry_at, retry_at + DAY) is False
    assert await store.webhooks.retry_failed(first.id, retry_at, retry_at + DAY) is True
    assert await store.webhooks.list_failed(10) == []
    retried = await store.webhooks.get(first.id)
    assert retried is not None
    assert (retried.status, retried.attempts, retried.deadline) == (
        DeliveryStatus.PENDING,
        0,
        retry_at + DAY,
    )


async def test_a_queue_whose_head_is_retried_later_than_newer_events_still_moves(
    open_store: Opener,
) -> None:
    store = await open_store()
    tc = record()
    head = delivery(tc.id, 0)
    await store.records.insert(RecordWrite(tc, deliveries=[head]))
    assert await claim(store) == [head.id]
    retry_at = NOW + timedelta(minutes=5)
    assert await store.webhooks.retry_later(head.id, "a", 1, retry_at, "HTTP 500") is True
    # A later change's event is due before the head's retry: it waits behind the head...
    newer = delivery(tc.id, 0, version=2, due_at=NOW + timedelta(minutes=1))
    await store.records.replace(RecordWrite(replace(tc, version=2), 1, deliveries=[newer]))
    assert await claim(store, now=NOW + timedelta(minutes=2)) == []
    # ...and the head is sent when its retry is due, then the newer one.
    assert await claim(store, now=retry_at) == [head.id]
    assert await store.webhooks.delivered(head.id, "a", 1, retry_at) is True
    assert await claim(store, now=retry_at) == [newer.id]


async def test_leases_are_won_once_and_expire(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    tcs = [record() for _ in range(4)]
    for tc in tcs:
        await first.records.insert(RecordWrite(tc, deliveries=[delivery(tc.id, 0)]))
    await first.webhooks.relay(100)
    claims = await asyncio.gather(
        first.webhooks.claim("a", NOW, LEASE, 10), second.webhooks.claim("b", NOW, LEASE, 10)
    )
    assert sorted(d.teleconsultation_id for batch in claims for d in batch) == sorted(
        tc.id for tc in tcs
    )
    assert await second.webhooks.claim("b", NOW, LEASE, 10) == []
    expired = LEASE + timedelta(seconds=1)
    assert len(await second.webhooks.claim("b", expired, expired + timedelta(minutes=1), 10)) == 4


async def test_an_endpoint_turned_off_fails_its_pending_deliveries(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    tc, other = record(), record()
    await first.records.insert(RecordWrite(tc, deliveries=[delivery(tc.id, 0), delivery(tc.id, 1)]))
    await first.records.insert(RecordWrite(other, deliveries=[delivery(other.id, 0, endpoint="b")]))
    await first.webhooks.turn_off("a", "https://a.example/hooks", NOW)
    assert await second.webhooks.turned_off() == {"a": "https://a.example/hooks"}
    await second.webhooks.relay(100)
    assert await second.webhooks.fail_endpoint("a", NOW, "410 Gone") == 2
    assert sorted(d.id for d in await first.webhooks.list_failed(10)) == [
        f"a.evt_{tc.id}_1_0",
        f"a.evt_{tc.id}_1_1",
    ]
    await second.webhooks.turn_on("a")
    assert await first.webhooks.turned_off() == {}

    later = delivery(other.id, 1, endpoint="c", due_at=NOW + DAY)  # failed before it was due
    await first.records.replace(RecordWrite(replace(other, version=2), 1, deliveries=[later]))
    await first.webhooks.relay(100)
    assert await first.webhooks.fail_endpoint("c", NOW, "410 Gone") == 1
    assert await first.webhooks.retry_failed(later.id, NOW, NOW + DAY) is True
    retried = await first.webhooks.get(later.id)
    assert retried is not None
    assert (retried.status, retried.next_at) == (DeliveryStatus.PENDING, NOW + DAY)


async def test_finished_deliveries_are_purged(open_store: Opener) -> None:
    store = await open_store()
    tc = record()
    sent, failed, pending = (
        delivery(tc.id, 0),
        delivery(tc.id, 1, endpoint="b"),
        delivery(tc.id, 2, endpoint="c"),
    )
    await store.records.insert(RecordWrite(tc, deliveries=[sent, failed, pending]))
    await claim(store)
    await store.webhooks.delivered(sent.id, "a", 1, NOW)
    await store.webhooks.fail(failed.id, "a", 1, NOW, "HTTP 500")
    await store.webhooks.retry_later(pending.id, "a", 1, NOW + DAY, "HTTP 500")
    later = NOW + timedelta(hours=1)
    assert await store.webhooks.purge(later, NOW - DAY, 10) == 1  # the delivered one
    assert await store.webhooks.purge(later, later, 10) == 1  # the failed one
    assert await store.webhooks.purge(later, later, 10) == 0
    assert await store.webhooks.backlog() == (1, 0, NOW)
    # Still pending past its deadline (its endpoint was removed, so no deliverer fails it):
    # its payload goes as a failed one's would.
    assert await store.webhooks.purge(later, NOW + 2 * DAY, 10) == 1
    assert await store.webhooks.backlog() == (0, 0, None)
