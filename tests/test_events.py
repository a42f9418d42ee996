"""The events of a change, as pure rules: which, in what order, due when, for which endpoint."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from teleconsult.core import events
from teleconsult.core.domain import Level, Participant, RecordState, Room, RoomPolicy, RoomSpec
from teleconsult.core.events import EndpointFilter, deliveries, events_of_change
from teleconsult.store.base import DeliveryStatus
from tests.store_contract.helpers import NOW, record

POLICY = RoomPolicy(unlimited=True, live=True, recording="none", immutable_period=timedelta(0))
PATIENT = Participant("patient-1", ("patient",), "Jane Doe", None, Level.BASIC, "patient-1")
ROOM = Room("room-1", RoomSpec((), None, True, "none"), {"patient-1": "https://link"})


def test_a_change_on_a_replica_whose_clock_is_behind_is_still_due_after_the_last() -> None:
    before = record(updated_at=NOW)
    after = replace(before, version=2, updated_at=NOW - timedelta(seconds=3))
    [updated] = events_of_change(events.UPDATED, before, after, POLICY, after.updated_at)
    assert (updated.id, updated.seq, updated.due_at) == (f"evt_{before.id}_2_0", 20, NOW)


def test_the_last_participant_makes_the_room_and_schedules_the_links() -> None:
    before = record()
    after = replace(before, version=2, participants=(*before.participants, PATIENT), room=ROOM)
    made = events_of_change(events.PARTICIPANT_ADDED, before, after, POLICY, NOW)
    assert [(e.type, e.id, e.due_at) for e in made] == [
        ("participant.added", f"evt_{before.id}_2_0", NOW),
        ("room.created", f"evt_{before.id}_2_1", NOW),
        ("links.available", f"evt_{before.id}_links", before.start_date),
        ("call.no_show", f"evt_{before.id}_no_show", before.start_date + timedelta(minutes=10)),
    ]
    assert made[-1].data["absent"] == [
        {"userExternalId": p.external_id, "providerUserId": p.provider_user_id, "level": p.level}
        for p in after.participants
    ]
    assert made[0].data["participant"] == {
        "userExternalId": "patient-1",
        "providerUserId": "patient-1",
        "level": "basic",
    }
    assert "Jane Doe" not in repr([e.payload for e in made])
    assert "https://link" not in repr([e.payload for e in made])


def test_a_cancel_withdraws_the_links_and_only_filtered_endpoints_hear_of_it() -> None:
    before = record(room=ROOM)
    after = replace(before, version=2, state=RecordState.TRASH, room=None)
    made = events_of_change(events.CANCELLED, before, after, POLICY, NOW)
    assert [(e.type, e.withdrawn) for e in made] == [
        ("teleconsultation.cancelled", False),
        ("links.available", True),
        ("call.no_show", True),
    ]
    everything = EndpointFilter("default", frozenset(events.EVENT_TYPES))
    ehr = EndpointFilter("ehr", frozenset({events.CANCELLED}))
    written = deliveries(made, [everything, ehr], timedelta(days=1))
    assert [(d.id, d.status, d.payload.get("type")) for d in written] == [
        (f"default.evt_{before.id}_2_0", DeliveryStatus.PENDING, "teleconsultation.cancelled"),
        (f"ehr.evt_{before.id}_2_0", DeliveryStatus.PENDING, "teleconsultation.cancelled"),
        (f"default.evt_{before.id}_links", DeliveryStatus.DROPPED, None),
        (f"default.evt_{before.id}_no_show", DeliveryStatus.DROPPED, None),
    ]
    assert written[0].deadline == NOW + timedelta(days=1)
