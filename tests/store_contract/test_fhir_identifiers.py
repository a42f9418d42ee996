"""The FHIR interface's Appointment identifiers on every store: one claim wins across
replicas, an abandoned claim is taken over once stale, a failed create frees its claim."""

from __future__ import annotations

import asyncio

from teleconsult.fhir.identifiers import Identifiers
from teleconsult.fhir.mapping import AppointmentId
from teleconsult.store.base import RecordWrite
from teleconsult.store.documents import new_teleconsultation_id
from tests.helpers import FrozenClock
from tests.store_contract.helpers import NOW, Opener, record

EHR_ID = AppointmentId("urn:ehr", "A-7")
LATE, OTHER, R1, R2, R3 = (new_teleconsultation_id() for _ in range(5))


async def test_one_claim_wins_and_an_abandoned_one_is_taken_over_once_stale(
    open_store: Opener,
) -> None:
    clock = FrozenClock(NOW)
    replicas = [await open_store() for _ in range(2)]
    identifiers = [Identifiers(s.provider_data, s.records, clock) for s in replicas]
    claimants = [new_teleconsultation_id() for _ in range(4)]
    answers = await asyncio.gather(
        *(
            ids.claim(EHR_ID, claimant)
            for ids, claimant in zip(identifiers * 2, claimants, strict=True)
        )
    )
    [winner] = [
        claimant for claimant, holder in zip(claimants, answers, strict=True) if holder is None
    ]
    assert sorted(str(holder) for holder in answers if holder is not None) == [winner] * 3
    assert await identifiers[1].of_record(winner) == EHR_ID
    assert await identifiers[1].holders("urn:ehr", "A-7") == [winner]
    assert await identifiers[1].holders(None, "A-7") == [winner]
    assert await identifiers[1].holders(None, "A-") == []

    # Its record never came: fresh, the claim holds; five minutes on, it is taken over.
    clock.advance(minutes=4)
    assert await identifiers[0].claim(EHR_ID, LATE) == winner
    clock.advance(minutes=2)
    assert await identifiers[0].claim(EHR_ID, LATE) is None
    assert await identifiers[1].holders("urn:ehr", "A-7") == [LATE]


async def test_a_claim_whose_record_exists_is_never_taken_over(open_store: Opener) -> None:
    clock = FrozenClock(NOW)
    store = await open_store()
    identifiers = Identifiers(store.provider_data, store.records, clock)
    made = record()
    assert await identifiers.claim(EHR_ID, made.id) is None
    await store.records.insert(RecordWrite(made))
    clock.advance(days=30)
    assert await identifiers.claim(EHR_ID, OTHER) == made.id


async def test_a_released_claim_is_free_and_forgotten(open_store: Opener) -> None:
    store = await open_store()
    identifiers = Identifiers(store.provider_data, store.records, FrozenClock(NOW))
    assert await identifiers.claim(EHR_ID, R1) is None
    await identifiers.release(EHR_ID, R1)
    assert await identifiers.of_record(R1) is None
    assert await identifiers.claim(EHR_ID, R2) is None
    await identifiers.release(EHR_ID, R1)  # not r-1's any more: r-2 keeps it
    assert await identifiers.holders("urn:ehr", "A-7") == [R2]
    assert await identifiers.of_record(R2) == EHR_ID
    assert (await identifiers.claim(AppointmentId(None, "A-7"), R3)) is None  # no system
    assert sorted(await identifiers.holders(None, "A-7")) == sorted([R2, R3])
