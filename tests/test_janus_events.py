"""Attendance from a real Janus: its HTTP event handler posts to `POST /providers/janus/events`.

The service listens on the host's end of the veth pair, where Janus's event handler (its
configuration written by `tests/janus_server.py`) posts with its basic credentials. A
participant joins the room as a page does (the token teleconsult handed to their link,
over Janus's own API) and leaves; the joins and leaves land in `details.attendance` and go
out as webhooks. Posts without the credentials are 401 and change nothing.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from teleconsult.services import SERVICES
from tests.helpers import DOCTOR, PATIENT, AppServer, FrozenClock, Server, path_of
from tests.janus_server import (
    JanusServer,
)
from tests.test_janus import CONFIG, around, real_now
from tests.test_webhooks import SECRET, Receiver, start_receiver

EVENTS = "/providers/janus/events"


@pytest.fixture
async def served(
    janus: JanusServer,
    events_port: int,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    aiohttp_server: Server,
) -> AsyncIterator[tuple[str, web.Application, Receiver]]:
    """The service where Janus's event handler posts, with a webhook receiver."""
    clock.now = real_now()
    receiver = await start_receiver(aiohttp_server, Receiver())
    app = build_app(
        CONFIG,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            CALL_PAGE_LOBBY="false",
            IMMUTABLE_PERIOD_MS=str(600_000),
            WEBHOOK_URL=receiver.url,
            WEBHOOK_SECRET=SECRET,
        ),
    )
    server = AppServer(app, host=janus.namespace.host_address, port=events_port)
    await server.start_server()
    yield f"http://{janus.namespace.host_address}:{events_port}", app, receiver
    await server.close()


async def attendance(session: aiohttp.ClientSession, room_id: str) -> dict[str, Any]:
    answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    details = (await answer.json())["details"]
    found: dict[str, Any] = details.get("attendance", {"presences": []})  # none before a join
    return found


async def until(session: aiohttp.ClientSession, room_id: str, done: Callable[[Any], bool]) -> Any:
    for _ in range(100):
        found = await attendance(session, room_id)
        if done(found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"Janus's events did not arrive: {found}")


async def test_joins_and_leaves_come_from_janus_s_events(
    served: tuple[str, web.Application, Receiver], janus: JanusServer, clock: FrozenClock
) -> None:
    url, app, receiver = served
    async with aiohttp.ClientSession(url) as session:
        created = await session.post(
            "/teleconsultation", json=around(clock.now, 2, DOCTOR, PATIENT)
        )
        room_id = (await created.json())["roomId"]
        answer = await session.get(
            f"/teleconsultation/{room_id}", headers={"miauserid": "patient-1"}
        )
        link = path_of((await answer.json())["accessLinkURL"])
        access = await (await session.post(link + "/token")).json()

        # The patient's page joins Janus with its token, as janus.js does, then leaves.
        async with aiohttp.ClientSession() as janus_api:
            token = access["token"]

            async def post(path: str, message: dict[str, Any]) -> dict[str, Any]:
                body = {**message, "transaction": "t", "token": token}
                async with janus_api.post(janus.http_url + path, json=body) as sent:
                    found: dict[str, Any] = await sent.json()
                    return found

            path = f"/{(await post('', {'janus': 'create'}))['data']['id']}"
            handle = await post(path, {"janus": "attach", "plugin": "janus.plugin.videoroom"})
            join = {"request": "join", "ptype": "publisher", "room": access["room"], "token": token}
            await post(f"{path}/{handle['data']['id']}", {"janus": "message", "body": join})
            joined = await until(session, room_id, lambda a: bool(a["presences"]))
            assert [p["bandyerUserId"] for p in joined["presences"]] == ["patient-1"]
            assert joined["presences"][0]["leftAt"] is None
            await post(path, {"janus": "destroy"})

        left = await until(session, room_id, lambda a: a["presences"][0]["leftAt"] is not None)
        assert left["callStartedAt"] == left["presences"][0]["joinedAt"]

        # Without the event handler's credentials: 401, and nothing changes.
        forged = {
            "type": 64, "timestamp": 1, "handle_id": 1,
            "event": {"plugin": "janus.plugin.videoroom", "data": {"event": "destroyed", "room": 1}},
        }  # fmt: skip
        wrong = base64.b64encode(b"janus:not-the-password").decode()
        for headers in ({}, {"Authorization": f"Basic {wrong}"}):
            refused = await session.post(EVENTS, json=[forged], headers=headers)
            assert refused.status == 401
        assert await attendance(session, room_id) == left

    while await app[SERVICES].deliverer.run_once():
        pass
    assert "participant.joined" in receiver.types
    assert "participant.left" in receiver.types
