"""The audit trail: appended entries come back by teleconsultation, oldest first, from a
position on; old ones are purged in batches."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from teleconsult.store.audit import AuditEntry
from teleconsult.store.documents import new_object_id
from tests.store_contract.helpers import NOW, Opener

ENTRY = AuditEntry(
    id="",
    at=NOW,
    action="link_handed_out",
    teleconsultation_id="t-1",
    actor="doctor-1",
    participant="doctor-1",
    fields=("participants", "start_date"),
    request_id="req-1",
    client_address="192.0.2.1",
    user_agent="clinic-app/2.1",
)


async def test_entries_by_teleconsultation_oldest_first(open_store: Opener) -> None:
    trail = (await open_store()).audit
    later = replace(ENTRY, id=new_object_id(), at=NOW + timedelta(minutes=1))
    first = replace(ENTRY, id=new_object_id())
    same_time = replace(ENTRY, id=new_object_id(), participant=None, client_address=None)
    other = replace(ENTRY, id=new_object_id(), teleconsultation_id="t-2")
    await trail.append([(later, NOW + timedelta(days=365)), (first, NOW + timedelta(days=365))])
    await trail.append([(entry, NOW + timedelta(days=365)) for entry in (same_time, other)])

    assert await trail.entries("t-1", None, 10) == [first, same_time, later]
    assert await trail.entries("t-1", (first.at, first.id), 1) == [same_time]
    assert await trail.entries("t-2", None, 10) == [other]
    assert await trail.entries("t-3", None, 10) == []


async def test_old_entries_are_purged_in_batches(open_store: Opener) -> None:
    trail = (await open_store()).audit
    for minutes in range(5):
        entry = replace(ENTRY, id=new_object_id(), at=NOW + timedelta(minutes=minutes))
        await trail.append([(entry, entry.at + timedelta(days=1))])
    cutoff = NOW + timedelta(minutes=3)
    assert await trail.purge_before(cutoff, 2) == 2
    assert await trail.purge_before(cutoff, 2) == 1
    assert await trail.purge_before(cutoff, 2) == 0
    assert [e.at for e in await trail.entries("t-1", None, 10)] == [
        NOW + timedelta(minutes=3),
        NOW + timedelta(minutes=4),
    ]
