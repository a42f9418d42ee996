"""GET ?waitSeconds=N: held until the caller's link is available, then the plain GET's answer.

The clock is frozen: the lock time is reached when a test moves it, and the replica's refresh
pass (WAIT_REFRESH_MS, short here) is what notices. A change made on another replica (a second
app on the same store) is noticed by the same pass; a change made on this one wakes at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from teleconsult.core.waiting import LinkWaiter
from teleconsult.services import SERVICES
from tests.helpers import (
    BEFORE_START,
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    create,
    error,
    join,
    teleconsultation,
)

DOCTOR_ID = {"miauserid": "doctor-1"}


def held(waiter: LinkWaiter) -> int:
    """How many GETs the waiter holds now."""
    return sum(len(waiters) for waiters in waiter._waiters.values())


async def waiting_get(client: Client, room_id: str, seconds: int) -> asyncio.Task[Any]:
    """A GET ?waitSeconds= sent in the background, returned once it is held by the server."""

    async def get() -> tuple[int, Any]:
        response = await client.get(
            f"/teleconsultation/{room_id}", params={"waitSeconds": seconds}, headers=DOCTOR_ID
        )
        return response.status, await response.json()

    task = asyncio.create_task(get())
    waiter = client.app[SERVICES].waiter
    while held(waiter) == 0:
        assert not task.done(), task.result()
        await asyncio.sleep(0.005)
    return task


async def test_a_link_already_available_is_answered_at_once_as_a_plain_get(
    client: Client, clock: FrozenClock
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)
    plain = await join(client, room_id, "doctor-1")
    assert plain[1]["accessLinkURL"] is not None

    response = await client.get(f"/teleconsultation/{room_id}?waitSeconds=30", headers=DOCTOR_ID)

    assert (response.status, await response.json()) == plain
    assert held(client.app[SERVICES].waiter) == 0


async def test_the_wait_ends_when_the_lock_time_is_reached(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(WAIT_REFRESH_MS="10")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    task = await waiting_get(client, room_id, 30)
    await asyncio.sleep(0.05)  # several refresh passes: the link is not available yet
    assert not task.done()

    clock.now = BEFORE_START.replace(hour=15, minute=30)  # START: the lock time

    status, body = await task
    assert (status, body) == await join(client, room_id, "doctor-1")
    assert body["accessLinkURL"] is not None


@pytest.mark.parametrize("elsewhere", [True, False], ids=["another replica", "this replica"])
async def test_a_change_that_completes_the_teleconsultation_ends_the_wait(
    make_client: MakeClient, clock: FrozenClock, elsewhere: bool
) -> None:
    """Another replica's change is seen by the refresh pass; this replica's own wakes the
    wait at once (no refresh pass runs within the test)."""
    first = await make_client(WAIT_REFRESH_MS="10" if elsewhere else "60000")
    second = await make_client(WAIT_REFRESH_MS="10") if elsewhere else first  # the same store
    clock.advance(hours=4)  # past the start: only the missing participant holds the link
    room_id = await create(first, teleconsultation(2, DOCTOR))
    task = await waiting_get(first, room_id, 30)
    await asyncio.sleep(0.05)
    assert not task.done()

    added = await second.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)
    assert added.status == 201, await added.text()

    status, body = await task
    assert (status, body) == await join(first, room_id, "doctor-1")
    assert body["accessLinkURL"] is not None


async def test_a_cancellation_elsewhere_ends_the_wait_with_the_plain_404(
    make_client: MakeClient,
) -> None:
    first = await make_client(WAIT_REFRESH_MS="10")
    second = await make_client(WAIT_REFRESH_MS="10")
    room_id = await create(first, teleconsultation(2, DOCTOR, PATIENT))
    task = await waiting_get(first, room_id, 30)

    deleted = await second.delete(f"/teleconsultation/{room_id}")
    assert deleted.status == 204

    assert await task == await join(first, room_id, "doctor-1")
    assert (await task)[0] == 404


async def test_when_the_seconds_pass_the_answer_is_the_plain_one(
    make_client: MakeClient,
) -> None:
    client = await make_client(WAIT_REFRESH_MS="10")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))

    status, body = await (await waiting_get(client, room_id, 1))

    assert (status, body) == await join(client, room_id, "doctor-1")
    assert body["accessLinkURL"] is None
    assert held(client.app[SERVICES].waiter) == 0


async def test_wait_seconds_out_of_bounds_is_a_400(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    for value, problem in [
        ("31", "Must be greater than or equal to 0 and less than or equal to 30."),
        ("-1", "Must be greater than or equal to 0 and less than or equal to 30."),
        ("soon", "Not a valid integer."),
    ]:
        response = await client.get(
            f"/teleconsultation/{room_id}?waitSeconds={value}", headers=DOCTOR_ID
        )
        assert response.status == 400
        assert await response.json() == error(400, f"waitSeconds: {problem}")


async def test_a_caller_who_is_not_a_participant_is_refused_at_once(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.get(
        f"/teleconsultation/{room_id}?waitSeconds=30", headers={"miauserid": "someone-else"}
    )
    assert response.status == 401
    assert held(client.app[SERVICES].waiter) == 0
