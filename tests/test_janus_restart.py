"""Janus restarts and forgets its rooms: the reconciler (or Janus's `started` event) makes the
live ones again, against a real Janus (`tests/janus_server.py`).

What Janus holds after the repair is asked of Janus itself: the room exists under its id, its
`allowed` list holds exactly the tokens of the participants entitled now (the tokens their
pages already hold, computed here from Janus's documented format), and a page joins with the
token it held before the restart without asking teleconsult for another. A cancelled
consultation's room and an ended one's are not made again; Janus unreachable during a pass
is a warning line (no token, no link), and the next pass makes the room.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from teleconsult.services import SERVICES
from tests.fakes.janus_proxy import FaultyJanus
from tests.fakes.livekit import Fault
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    AppServer,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    base_url,
    create,
    path_of,
    person,
    provider_room,
)
from tests.janus_server import (
    JanusServer,
    signed_token,
)
from tests.test_janus import CONFIG, around, exists, real_now
from tests.test_janus_revoke import (
    DOCTOR_ASKS,
    Publisher,
    allowed,
    block_path,
    link_and_token,
    link_path,
)

FAMILY = person("family-1", ["patient"], "Bo Doe", "en")


def environ(janus: JanusServer) -> dict[str, str]:
    return janus.environ(
        JANUS_ALLOW_PLAIN_HTTP="true",
        UNLIMITED_TELECONSULTATION="false",
        IMMUTABLE_PERIOD_MS=str(600_000),
        CALL_PAGE_LOBBY="false",  # the lobby's tests: tests/test_janus_lobby.py
    )


@pytest.fixture
async def janus_client(make_client: MakeClient, janus: JanusServer, clock: FrozenClock) -> Client:
    """The service on the real Janus; Janus's events do not reach it (only the passes repair)."""
    clock.now = real_now()
    return await make_client(CONFIG, **environ(janus))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def token_for(janus: JanusServer, clock: FrozenClock, room: str, user: str, *more: str) -> str:
    """A participant's token as Janus's format and the provider's docs say it is: the
    consultation's end (35 minutes from `around`'s now) plus the 15 minutes' grace."""
    expires = math.ceil((clock.now + timedelta(minutes=50)).timestamp())
    return signed_token(janus.token_secret, expires, f"teleconsult.{room}.{user}", *more)


async def test_a_pass_makes_the_room_janus_forgot_again_with_the_tokens_of_those_entitled(
    janus_client: Client, janus: JanusServer, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    room_id = await create(janus_client, around(clock.now, 4, DOCTOR, PATIENT, NURSE, FAMILY))
    room = await provider_room(janus_client, room_id)
    _, doctor_token = await link_and_token(janus_client, room_id, "doctor-1")
    _, patient_token = await link_and_token(janus_client, room_id, "patient-1")
    assert doctor_token == token_for(janus, clock, room, "doctor-1")
    # The nurse's link is revoked (a new generation), the family member removed: the room
    # must come back with the nurse's new token and without the family member's.
    response = await janus_client.delete(link_path(room_id, "nurse-1"), headers=DOCTOR_ASKS)
    assert response.status == 204
    response = await janus_client.put(block_path(room_id, "family-1"), headers=DOCTOR_ASKS)
    assert response.status == 204
    reconciler = janus_client.app[SERVICES].reconciler
    assert await reconciler.repair_rooms() == 0  # Janus holds it: nothing to do

    await janus.restart()
    assert not await exists(janus, room)
    assert await reconciler.repair_rooms() == 1

    assert await exists(janus, room)  # the same id, before any page asked for a token again
    assert await allowed(janus_client, janus, room) == {
        doctor_token,
        patient_token,
        token_for(janus, clock, room, "nurse-1", "generation.1"),
    }
    # The patient's page joins with the token it held before the restart.
    patient = Publisher(http, janus.http_url, patient_token)
    assert (await patient.join(room, "patient-1"))["videoroom"] == "joined"
    assert await reconciler.repair_rooms() == 0  # made once: the next pass finds it
    response = await janus_client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204  # destroyed with the secret it was made again with
    assert not await exists(janus, room)


async def test_two_replicas_making_the_same_rooms_again_at_once_both_succeed(
    make_client: MakeClient, janus: JanusServer, clock: FrozenClock
) -> None:
    clock.now = real_now()
    first = await make_client(CONFIG, **environ(janus))
    second = await make_client(CONFIG, **environ(janus))  # the same database
    rooms = []
    for _ in range(3):
        room_id = await create(first, around(clock.now, 2, DOCTOR, PATIENT))
        rooms.append(await provider_room(first, room_id))
        await link_and_token(first, room_id, "patient-1")
    await janus.restart()

    made = await asyncio.gather(
        first.app[SERVICES].reconciler.repair_rooms(),
        second.app[SERVICES].reconciler.repair_rooms(),
    )

    assert made[0] + made[1] >= 3  # each room made by one of them at least, neither failed
    for room in rooms:
        assert await exists(janus, room)
        assert await allowed(first, janus, room) == {
            token_for(janus, clock, room, "doctor-1"),
            token_for(janus, clock, room, "patient-1"),
        }


async def test_a_cancelled_or_ended_consultation_s_room_is_not_made_again(
    janus_client: Client, janus: JanusServer, clock: FrozenClock
) -> None:
    reconciler = janus_client.app[SERVICES].reconciler
    cancelled_id = await create(janus_client, around(clock.now, 2, DOCTOR, PATIENT))
    cancelled = await provider_room(janus_client, cancelled_id)
    await link_and_token(janus_client, cancelled_id, "patient-1")
    ended_id = await create(janus_client, around(clock.now, 2, DOCTOR, NURSE))
    ended = await provider_room(janus_client, ended_id)
    await link_and_token(janus_client, ended_id, "nurse-1")
    # Cancelled while Janus is down: its room could not be destroyed (the outbox retries).
    janus.stop()
    response = await janus_client.delete(f"/teleconsultation/{cancelled_id}")
    assert response.status == 204
    janus.start()

    assert await reconciler.repair_rooms() == 1  # only the consultation still live
    assert not await exists(janus, cancelled)
    assert await exists(janus, ended)

    # The ended one: its window (the end plus the grace) passes, then Janus restarts.
    clock.advance(minutes=50, seconds=1)
    await janus.restart()
    assert await reconciler.repair_rooms() == 0
    assert not await exists(janus, ended)
    await reconciler.run_pass()  # the cancelled room's job: Janus no longer holds it
    assert not await exists(janus, cancelled)


async def test_janus_unreachable_during_a_pass_is_logged_and_the_next_pass_makes_the_room(
    janus_client: Client, janus: JanusServer, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    room_id = await create(janus_client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(janus_client, room_id)
    link, token = await link_and_token(janus_client, room_id, "patient-1")
    reconciler = janus_client.app[SERVICES].reconciler
    janus.stop()

    with caplog.at_level(logging.INFO):
        await reconciler.run_pass()  # no exception: the rest of the pass ran

    failed = "reconciler: the video provider's rooms could not be repaired (each pass tries "
    failed += "again): The janus provider failed to list the rooms: cannot connect"
    assert reconciler_lines(caplog) == [("WARNING", failed)]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        await reconciler.run_pass()  # still down: said once, then at debug
    assert reconciler_lines(caplog) == [("DEBUG", failed)]
    for secret in (token, path_of(link), janus.admin_key, janus.token_secret):
        assert secret not in caplog.text

    janus.start()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await reconciler.run_pass()
    assert reconciler_lines(caplog) == [
        ("INFO", "reconciler: the video provider's rooms are repaired again"),
        ("INFO", "provider rooms made again"),
    ]
    assert await exists(janus, room)
    assert await allowed(janus_client, janus, room) == {
        token,
        token_for(janus, clock, room, "doctor-1"),  # entitled, though their page never came
    }
    made = [r for r in caplog.records if r.getMessage() == "provider rooms made again"]
    assert [getattr(r, "fields", None) for r in made] == [
        {"event": "provider rooms made again", "count": 1}
    ]


def reconciler_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "teleconsult.core.reconciler"
    ]


@dataclass(frozen=True)
class Served:
    url: str
    app: web.Application


@pytest.fixture
async def served(
    janus: JanusServer,
    events_port: int,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
) -> AsyncIterator[Served]:
    """The service on the host's end of the veth pair: where Janus's event handler posts (its
    `started` event among the rest) and pages in the namespace open their links."""
    clock.now = real_now()
    url = f"http://{janus.namespace.host_address}:{events_port}"
    app = build_app(CONFIG, **environ(janus), JANUS_PAGE_URL=url)
    server = AppServer(app, host=janus.namespace.host_address, port=events_port)
    await server.start_server()
    yield Served(url, app)
    await server.close()


async def handed_out(url: str, body: dict[str, Any], users: list[str]) -> tuple[str, list[str]]:
    """A consultation created at `url`, and each user's link (`GET` as them)."""
    async with aiohttp.ClientSession(url) as session:
        created = await session.post("/teleconsultation", json=body)
        assert created.status == 201
        room_id: str = (await created.json())["roomId"]
        links = []
        for user in users:
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links.append((await answer.json())["accessLinkURL"])
    return room_id, links


async def page_token(link: str) -> str:
    """The Janus token the link's page gets (the same at every ask)."""
    async with aiohttp.ClientSession() as session:
        answer = await session.post(link + "/token")
        assert answer.status == 200
        token: str = (await answer.json())["token"]
        return token


async def made_again(janus: JanusServer, room: str) -> None:
    """Wait until Janus holds the room again (the `started` event's repair), 10 s at most."""
    for _ in range(100):
        if await exists(janus, room):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the room was not made again:\n{janus.log()}")


async def test_janus_s_started_event_has_its_rooms_made_again_at_once(
    served: Served, janus: JanusServer, clock: FrozenClock
) -> None:
    body = around(clock.now, 2, DOCTOR, PATIENT)
    room_id, [link] = await handed_out(served.url, body, ["patient-1"])
    token = await page_token(link)
    room = await provider_room(served.app, room_id)

    await janus.restart()  # no reconciler runs here (RECONCILE_INTERVAL_MS=0), no page asks

    await made_again(janus, room)
    async with aiohttp.ClientSession() as http:
        joined = await Publisher(http, janus.http_url, token).join(room, "patient-1")
    assert joined["videoroom"] == "joined"


@pytest.mark.parametrize(
    ("request_name", "fault", "failure"),
    [
        ("list", Fault(delay=0.6), "list the rooms: no answer within 0.3 s"),
        ("create", Fault(status=500), "create a room: HTTP 500"),
    ],
)
async def test_a_janus_that_fails_a_pass_s_step_leaves_the_room_to_the_next_pass(
    make_client: MakeClient,
    janus: JanusServer,
    clock: FrozenClock,
    aiohttp_server: Server,
    caplog: pytest.LogCaptureFixture,
    request_name: str,
    fault: Fault,
    failure: str,
) -> None:
    proxy = FaultyJanus(janus)
    url = await base_url(aiohttp_server, proxy.app())
    clock.now = real_now()
    client = await make_client(
        CONFIG,
        **{
            **environ(janus),
            "JANUS_URL": url + "/janus",
            "JANUS_TIMEOUT_MS": "300",
            "JANUS_MAX_ATTEMPTS": "1",
        },
    )
    room_id = await create(client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    _, token = await link_and_token(client, room_id, "patient-1")
    await janus.restart()
    proxy.fail(request_name, fault)
    reconciler = client.app[SERVICES].reconciler

    with caplog.at_level(logging.INFO):
        await reconciler.run_pass()

    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "reconciler: the video provider's rooms could not be repaired (each pass tries again): "
        f"The janus provider failed to {failure}"
    ]
    assert token not in caplog.text
    assert room not in proxy.rooms
    await reconciler.run_pass()
    assert room in proxy.rooms
    assert await allowed(client, janus, room) == {token, token_for(janus, clock, room, "doctor-1")}
