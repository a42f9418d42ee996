"""What providers keep never outlives its teleconsultation: a webrtc room whose creation's
answer was lost is found and deleted by the reconciler, and after the retention pass a
purged teleconsultation's participant is named nowhere but in the audit trail (on the
store the suite runs on)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest
from teleconsult_webrtc import WebRTCVideo
from teleconsult_webrtc.rooms import Rooms

from teleconsult.core.outbox import JOB_GRACE
from teleconsult.errors import Unavailable
from teleconsult.services import SERVICES
from teleconsult.store.sqlite.audit import TABLE as AUDIT
from teleconsult.store.sqlite.connection import sqlite_path
from tests.helpers import (
    DOCTOR,
    PATIENT,
    STARTED,
    TEST_STORE,
    WEBRTC,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    create,
    join,
    open_call,
    teleconsultation,
)
from tests.test_webhooks import SECRET, Receiver, deliver_all, start_receiver

SECURITY = Path(__file__).parent.parent / "docs" / "security.md"


def webrtc(client: Client) -> WebRTCVideo:
    found = client.app[SERVICES].video
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
    assert await client.app[SERVICES].reconciler.run_once() == 1

    assert await rooms.get(left) is None
    assert await rooms.ids() == set()
    assert await client.app[SERVICES].store.outbox.job_backlog() == (0, None)


async def test_a_room_whose_record_was_written_is_kept_by_the_reconciler(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None

    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    await client.app[SERVICES].reconciler.run_once()

    assert await webrtc(client).rooms.ids() == {record.room.provider_room_id}
    assert await client.app[SERVICES].store.outbox.job_backlog() == (0, None)


async def test_user_documents_left_by_earlier_versions_go_as_a_replica_starts(
    make_client: MakeClient,
) -> None:
    first = await make_client(**WEBRTC)
    storage = webrtc(first).storage
    await storage.put("user/patient-1", {"level": "basic"}, None)  # as earlier versions did

    second = await make_client(**WEBRTC)  # a replica (re)starting on the same store
    await webrtc(second).started()  # what it does as it starts

    assert await storage.get("user/patient-1") is None
    assert [found.key for found in await storage.find("")] == ["link-secret"]


async def test_after_the_purge_a_participant_is_named_only_in_the_audit_trail(
    make_client: MakeClient,
    clock: FrozenClock,
    aiohttp_server: Server,
    store_url: str,
) -> None:
    receiver = await start_receiver(aiohttp_server, Receiver())
    client = await make_client(
        **WEBRTC, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET, RETENTION_ENDED_DAYS="1"
    )
    body = teleconsultation(2, DOCTOR, PATIENT)
    response = await client.post("/teleconsultation", json=body, headers={"Idempotency-Key": "k"})
    assert response.status == 201
    ended = (await response.json())["roomId"]
    cancelled = await create(client, body)
    assert (await client.delete(f"/teleconsultation/{cancelled}")).status == 204
    clock.now = STARTED
    links = {}
    for user in ("doctor-1", "patient-1"):
        status, answer = await join(client, ended, user)
        assert status == 200, answer
        links[user] = answer["accessLinkURL"]
    doctor, _ = await open_call(client, links["doctor-1"])
    patient, _ = await open_call(client, links["patient-1"])  # the call starts: attendance
    await patient.close()
    await doctor.close()
    await deliver_all(client)
    assert receiver.received  # the events went out, with the participants' ids
    clock.advance(days=40)  # past the end, and past every webhook's due time
    await deliver_all(client)
    clock.advance(days=40)  # past every retention period but the audit trail's

    reconciler = client.app[SERVICES].reconciler
    await reconciler.run_pass()
    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    await reconciler.run_pass()

    assert await client.app[SERVICES].store.records.get_any(ended) is None
    stored = await everything_stored(client, store_url)
    assert {name for name, text in stored.items() if "patient-1" in text} == {AUDIT}
    assert not [name for name, text in stored.items() if "Jane Doe" in text]
    assert set(stored) <= documented_tables()


def documented_tables() -> set[str]:
    """The tables and collections docs/security.md's data-protection table names."""
    text = SECURITY.read_text().split("## Data protection", 1)[1].split("\n\n", 3)[2]
    first_cells = [row.split("|")[1] for row in text.splitlines()]
    return {name for cell in first_cells for name in re.findall(r"`([a-z_]+)`", cell)}


async def everything_stored(client: Client, store_url: str) -> dict[str, str]:
    """Every table (SQLite) or collection (MongoDB) the service made, as text, by name."""
    if TEST_STORE == "sqlite":
        with contextlib.closing(sqlite3.connect(sqlite_path(store_url))) as db:
            names = [
                row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            select = 'SELECT * FROM "{}"'  # names from sqlite_master
            return {name: repr(db.execute(select.format(name)).fetchall()) for name in names}
    database = cast(Any, client.app[SERVICES].store.records)._database.database
    return {
        name: repr([document async for document in database[name].find()])
        for name in await database.list_collection_names()
    }
