"""Kaleyra answers the plugin has never seen (issue 16), through the HTTP API.

Each test checks the fake Kaleyra server's own list of live rooms: where a room
id could be read, no room is left behind.
"""

from __future__ import annotations

import time

import pytest

from teleconsult.core.outbox import JOB_GRACE
from teleconsult.services import SERVICES
from tests.fakes.kaleyra import FakeKaleyra, Fault
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    bandyer_env,
    create,
    error,
    join,
    teleconsultation,
)


@pytest.fixture
async def bandyer(make_client: MakeClient, kaleyra_url: str) -> Client:
    return await make_client(**bandyer_env(kaleyra_url))


async def test_the_room_answer_documented_for_v1_is_read(
    bandyer: Client, kaleyra: FakeKaleyra, clock: FrozenClock
) -> None:
    kaleyra.room_answer = "v1"  # {room: {room_id, user_urls: [{user, url}]}}
    room_id = await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)
    status, body = await join(bandyer, room_id, "patient-1")
    assert status == 200
    assert "/direct-rest-call-handler/" in body["accessLinkURL"]
    assert len(kaleyra.rooms) == 1


async def test_a_room_answered_without_links_is_deleted_at_once(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    kaleyra.room_answer = "no_links"
    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 502
    assert await response.json() == error(
        502, "The bandyer provider failed to create a room: no link for 2 participant(s)"
    )
    assert kaleyra.calls("delete_room")  # the room it could name is gone
    assert kaleyra.rooms == {}
    assert await bandyer.app[SERVICES].store.outbox.job_backlog() == (0, None)


async def test_a_room_answered_without_an_id_is_counted_as_maybe_left(
    bandyer: Client, kaleyra: FakeKaleyra, clock: FrozenClock
) -> None:
    kaleyra.room_answer = "no_id"
    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 502
    assert await response.json() == error(
        502,
        "The bandyer provider failed to create a room: the answer has no room id "
        "(docs/operations.md: a room may be left)",
    )
    assert len(kaleyra.rooms) == 1  # nobody can name it: left, and counted
    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    assert await bandyer.app[SERVICES].reconciler.run_once() == 1
    metrics = await (await bandyer.get("/-/metrics")).text()
    assert 'teleconsult_reconciliation_jobs_total{outcome="unknown_room"} 1.0' in metrics


@pytest.mark.parametrize(
    ("status", "message"),
    [(409, "user already exists"), (400, "The id is already taken"), (422, "duplicate user id")],
)
async def test_a_taken_custom_id_counts_as_created_whatever_its_status(
    bandyer: Client, kaleyra: FakeKaleyra, status: int, message: str
) -> None:
    kaleyra.duplicate_user = (status, message)
    kaleyra.users["doctor-1"] = "plus"  # made earlier, by another deployment on this account
    room_id = await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    assert [call.body["id"] for call in kaleyra.calls("create_user")] == ["doctor-1", "patient-1"]
    assert len(kaleyra.rooms) == 1
    status_code, body = await join(bandyer, room_id, "doctor-1")
    assert (status_code, body["bandyerUserId"]) == (200, "doctor-1")


async def test_a_refusal_that_does_not_say_the_id_is_taken_is_a_502(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_user", Fault(status=400, message="role is invalid"))
    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 502
    assert await response.json() == error(
        502, "The bandyer provider failed to create a user: HTTP 400: role is invalid"
    )
    assert kaleyra.rooms == {}


async def test_every_page_of_uploads_is_deleted(
    make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url, TELECONSULTATION_DELETE_UPLOADS="true"))
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    [room] = kaleyra.rooms
    kaleyra.uploads[room] = [f"file-{n}" for n in range(5)]
    kaleyra.page_size = 2  # three pages
    response = await client.delete(f"/teleconsultation/{room_id}/uploads")
    assert response.status == 200
    assert await response.json() == {"total": 5, "deleted": 5}
    assert kaleyra.uploads[room] == []
    assert [call.query["offset"] for call in kaleyra.calls("list_uploads")] == ["0", "2", "4"]


async def test_a_rate_limit_within_the_deadline_is_waited_for(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(status=429, retry_after="1"))
    started = time.monotonic()
    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 201
    assert time.monotonic() - started >= 1.0  # it waited as asked (a lower bound, not a speed)
    assert len(kaleyra.calls("create_room")) == 2


async def test_a_rate_limit_beyond_the_deadline_is_not_waited_for(
    bandyer: Client, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(status=429, retry_after="120"))
    response = await bandyer.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 503
    assert await response.json() == error(
        503,
        "The bandyer provider failed to create a room: rate limited (HTTP 429)",
        code="provider_unavailable",
    )
    assert len(kaleyra.calls("create_room")) == 1
    assert kaleyra.rooms == {}


async def test_the_reconciler_honours_a_long_rate_limit(
    bandyer: Client, kaleyra: FakeKaleyra, clock: FrozenClock
) -> None:
    room_id = await create(bandyer, teleconsultation(2, DOCTOR, PATIENT))
    kaleyra.fail("delete_room", Fault(status=429, retry_after="120", times=10))
    response = await bandyer.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204  # cancelling never fails because of the provider
    outbox = bandyer.app[SERVICES].store.outbox
    reconciler = bandyer.app[SERVICES].reconciler
    clock.advance(seconds=60)  # the usual retry delay (10 s) is long past: Kaleyra said 120
    assert await reconciler.run_once() == 0
    clock.advance(seconds=61)
    assert await reconciler.run_once() == 1  # still limited: the next date is 120 s away again
    clock.advance(seconds=60)
    assert await reconciler.run_once() == 0
    kaleyra.faults.clear()
    clock.advance(seconds=61)
    assert await reconciler.run_once() == 1
    assert kaleyra.rooms == {}
    assert await outbox.job_backlog() == (0, None)
