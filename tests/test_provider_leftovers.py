"""What providers keep never outlives its teleconsultation: a webrtc room whose creation's
answer was lost is found and deleted by the reconciler, and after the retention pass a
purged teleconsultation's participant is named nowhere but in the audit trail (on the
store the suite runs on)."""

from __future__ import annotations

from typing import Any

import pytest
from teleconsult_webrtc import WebRTCVideo
from teleconsult_webrtc.rooms import Rooms

from teleconsult import keys
from teleconsult.core.outbox import JOB_GRACE
from teleconsult.errors import Unavailable
from tests.helpers import (
    DOCTOR,
    PATIENT,
    WEBRTC,
    Client,
    FrozenClock,
    MakeClient,
    create,
    teleconsultation,
)


def webrtc(client: Client) -> WebRTCVideo:
    found = client.app[keys.VIDEO_PROVIDER]
    assert isinstance(found, WebRTCVideo)
    return found


async def test_a_room_whose_creation_answer_was_lost_is_deleted_by_the_reconciler(
    make_client: MakeClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(**WEBRTC)
    rooms = webrtc(client).rooms
    create_room = rooms.create

    async def made_then_lost(self: Rooms, *args: Any) -> Any:
        await create_room(*args)  # the room is written...
        raise Unavailable("The SQLite store cannot be reached (disk I/O error); retry later.")

    monkeypatch.setattr(Rooms, "create", made_then_lost)  # ...but its answer never comes
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 503
    assert await response.json() == {
        "statusCode": 503,
        "error": "Service Unavailable",
        "message": "The SQLite store cannot be reached (disk I/O error); retry later.",
        "code": "store_unavailable",
    }
    [left] = await rooms.ids()  # on the provider, named by no record
    monkeypatch.undo()

    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    assert await client.app[keys.RECONCILER].run_once() == 1

    assert await rooms.get(left) is None
    assert await rooms.ids() == set()
    assert await client.app[keys.STORE].outbox.job_backlog() == (0, None)


async def test_a_room_whose_record_was_written_is_kept_by_the_reconciler(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    record = await client.app[keys.STORE].records.get(room_id)
    assert record is not None
    assert record.room is not None

    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    await client.app[keys.RECONCILER].run_once()

    assert await webrtc(client).rooms.ids() == {record.room.provider_room_id}
    assert await client.app[keys.STORE].outbox.job_backlog() == (0, None)


async def test_user_documents_left_by_earlier_versions_go_as_a_replica_starts(
    make_client: MakeClient,
) -> None:
    first = await make_client(**WEBRTC)
    storage = webrtc(first).storage
    await storage.put("user/patient-1", {"level": "basic"}, None)  # as earlier versions did

    second = await make_client(**WEBRTC)  # a replica (re)starting on the same store
    await webrtc(second).signer()  # what it loads as it starts

    assert await storage.get("user/patient-1") is None
    assert [found.key for found in await storage.find("")] == ["link-secret"]
