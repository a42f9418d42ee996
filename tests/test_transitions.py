"""A room transition's plan (pure), and the one compare-and-set loop's deadline."""

from __future__ import annotations

from dataclasses import replace

import pytest

from teleconsult.core.domain import Level, RecordState, Room, RoomSpec
from teleconsult.core.events import CANCELLED, UPDATED
from teleconsult.core.transitions import plan_cancel, plan_change
from teleconsult.providers import outbound
from teleconsult.services import SERVICES
from tests.helpers import DOCTOR, PATIENT, Client, create, teleconsultation
from tests.test_domain import participant, record

DOCTOR_1, PATIENT_1 = participant("d", Level.PLUS), participant("p", Level.BASIC)
SPEC = RoomSpec(participants=(), duration_seconds=None, live=True, recording="none")
OTHER_SPEC = replace(SPEC, recording="manual")
ROOM = Room(provider_room_id="room-1", spec=SPEC, links={})


def test_a_record_that_needs_no_room_yet_plans_none() -> None:
    new = record(2, DOCTOR_1)

    plan = plan_change(None, new, UPDATED, None)

    assert (plan.create, plan.keep, plan.retire, plan.locks) == (None, None, None, False)


def test_a_record_whose_room_is_still_right_keeps_it() -> None:
    current = record(2, DOCTOR_1, PATIENT_1, room=ROOM)

    plan = plan_change(current, current, UPDATED, SPEC)

    assert (plan.create, plan.keep, plan.retire, plan.locks) == (None, ROOM, None, True)


def test_a_record_whose_room_changed_gets_a_new_one_and_retires_the_old() -> None:
    current = record(2, DOCTOR_1, PATIENT_1, room=ROOM)

    plan = plan_change(current, current, UPDATED, OTHER_SPEC)

    assert (plan.create, plan.keep, plan.retire) == (OTHER_SPEC, None, ROOM)
    assert plan.retire_reason == "replaced"


def test_a_record_that_no_longer_needs_its_room_retires_it() -> None:
    current = record(2, DOCTOR_1, PATIENT_1, room=ROOM)

    plan = plan_change(current, record(2, DOCTOR_1), UPDATED, None)

    assert (plan.create, plan.keep, plan.retire) == (None, None, ROOM)
    assert plan.retire_reason == "no_longer_needed"


def test_a_cancel_retires_the_room_and_is_not_refused_once_locked() -> None:
    current = record(2, DOCTOR_1, PATIENT_1, room=ROOM)
    trashed = replace(current, state=RecordState.TRASH, room=None)

    plan = plan_cancel(current, trashed)

    assert (plan.kind, plan.create, plan.retire, plan.locks) == (CANCELLED, None, ROOM, False)
    assert plan.retire_reason == "cancelled"


async def test_a_cancel_writes_within_the_outbound_deadline(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    records = client.app[SERVICES].store.records
    deadlines: list[float | None] = []
    replace_record = records.replace

    async def replacing(*args: object, **kwargs: object) -> bool:
        deadlines.append(outbound.DEADLINE.get())
        return await replace_record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(records, "replace", replacing)

    response = await client.delete(
        f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"}
    )

    assert response.status == 204
    assert len(deadlines) == 1
    assert deadlines[0] is not None
