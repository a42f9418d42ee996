"""Revoking a participant's link and removing them (issue 30) with the janus provider, through
the HTTP API against a real Janus (`tests/janus_server.py`), on SQLite or MongoDB (mongomock).

What Janus holds is asked of Janus: the room's `allowed` list (an `allowed` request answers
with it), and a participant kept in the room over Janus's HTTP API, as a page would be, hears
that it was kicked."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from teleconsult_janus import JanusVideo

from teleconsult.services import SERVICES
from tests.fakes.janus_proxy import FaultyJanus
from tests.fakes.livekit import Fault
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    base_url,
    create,
    error,
    join,
    path_of,
    provider_room,
)
from tests.janus_server import (
    JanusServer,
    videoroom,
)
from tests.test_janus import CONFIG, admin_token, around, provider, real_now

DOCTOR_ASKS = {"miauserid": "doctor-1"}
REVOKED = {
    "statusCode": 410,
    "error": "Gone",
    "message": "Questo link della chiamata è stato ritirato.",
    "reason": "revoked",
}
REMOVED = {
    "statusCode": 403,
    "error": "Forbidden",
    "message": "Non fa più parte di questa chiamata.",
    "reason": "removed",
}
BLOCKED = error(
    403,
    "You were removed from this teleconsultation: no link is handed out to you. Ask its "
    "organiser to let you back in.",
    code="participant_blocked",
)
KICKED = {"videoroom": "event", "leaving": "ok", "reason": "kicked"}


def link_path(room_id: str, user: str) -> str:
    return f"/teleconsultation/{room_id}/participants/{user}/link"


def block_path(room_id: str, user: str) -> str:
    return f"/teleconsultation/{room_id}/participants/{user}/block"


async def link_and_token(client: Client, room_id: str, user: str) -> tuple[str, str]:
    """The participant's link (their GET) and the Janus token its page gets."""
    status, body = await join(client, room_id, user)
    assert status == 200, body
    link = body["accessLinkURL"]
    response = await client.post(path_of(link) + "/token")
    assert response.status == 200
    token: str = (await response.json())["token"]
    return link, token


async def allowed(client: Client, janus: JanusServer, room: str) -> set[str]:
    """The room's `allowed` list, as Janus holds it."""
    return await allowed_in(client.app, janus, room)


async def allowed_in(app: web.Application, janus: JanusServer, room: str) -> set[str]:
    """The `allowed` list of a room of `app`'s provider, read with the room's stored secret."""
    video = app[SERVICES].video
    assert isinstance(video, JanusVideo)
    stored = await video.storage.get(f"room/{room}")
    assert stored is not None
    body = {
        "request": "allowed",
        "room": int(room),
        "secret": stored.document["secret"],
        "action": "remove",
        "allowed": ["nothing-of-ours"],
    }
    answer = await videoroom(janus.http_url, admin_token(janus), body)
    return set(answer["allowed"])


async def ending_of(client: Client, link: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(path_of(link) + "/info")
    return response.status, await response.json()


class Publisher:
    """A participant in the room over Janus's HTTP API, as a page is over its WebSocket."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session, self.url, self.token = session, url, token
        self.path = ""

    async def post(self, path: str, message: dict[str, object]) -> dict[str, Any]:
        payload = {**message, "transaction": secrets.token_hex(6), "token": self.token}
        async with self.session.post(self.url + path, json=payload) as answer:
            found: dict[str, Any] = await answer.json()
            return found

    async def event(self) -> dict[str, Any]:
        """The next videoroom event of this participant's handle (Janus's long poll)."""
        params = {"token": self.token, "maxev": "1"}
        while True:
            async with self.session.get(self.url + self.path, params=params) as polled:
                found = await polled.json()
            if found.get("janus") == "event":
                data: dict[str, Any] = found["plugindata"]["data"]
                return data

    async def join(self, room: str, display: str) -> dict[str, Any]:
        created = await self.post("", {"janus": "create"})
        self.path = f"/{created['data']['id']}"
        handle = await self.post(self.path, {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        body = {"request": "join", "ptype": "publisher", "room": int(room), "display": display}
        await self.post(
            f"{self.path}/{handle['data']['id']}",
            {"janus": "message", "body": {**body, "token": self.token}},
        )
        return await self.event()


@pytest.fixture
async def janus_client(make_client: MakeClient, janus: JanusServer, clock: FrozenClock) -> Client:
    """The service on the real Janus, as tests/test_janus.py runs it."""
    clock.now = real_now()
    environ = janus.environ(
        JANUS_ALLOW_PLAIN_HTTP="true", UNLIMITED_TELECONSULTATION="false", CALL_PAGE_LOBBY="false"
    )
    return await make_client(CONFIG, **environ, IMMUTABLE_PERIOD_MS=str(600_000))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_revoked_link_leaves_janus_allowed_list_its_page_is_kicked_and_a_new_one_works(
    janus_client: Client, janus: JanusServer, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    room_id = await create(janus_client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(janus_client, room_id)
    old_link, old_token = await link_and_token(janus_client, room_id, "patient-1")
    _, doctor_token = await link_and_token(janus_client, room_id, "doctor-1")
    patient = Publisher(http, janus.http_url, old_token)
    doctor = Publisher(http, janus.http_url, doctor_token)
    joined = await patient.join(room, "patient-1")
    assert joined["videoroom"] == "joined"
    assert (await doctor.join(room, "doctor-1"))["videoroom"] == "joined"
    assert await allowed(janus_client, janus, room) == {old_token, doctor_token}

    response = await janus_client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    assert await allowed(janus_client, janus, room) == {doctor_token}
    assert {k: v for k, v in (await patient.event()).items() if k != "room"} == KICKED
    told = await doctor.event()  # the others hear that they left
    assert told == {"videoroom": "event", "room": int(room), "kicked": joined["id"]}
    listed = await videoroom(
        janus.http_url, admin_token(janus), {"request": "listparticipants", "room": int(room)}
    )
    assert [p["display"] for p in listed["participants"]] == ["doctor-1"]
    assert await ending_of(janus_client, old_link) == (410, REVOKED)
    response = await janus_client.post(path_of(old_link) + "/token")
    assert (response.status, (await response.json())["reason"]) == (410, "revoked")
    # Janus itself refuses the old token now.
    body = {"request": "join", "ptype": "publisher", "room": int(room), "token": old_token}
    assert (await videoroom(janus.http_url, old_token, body))["error_code"] == 433

    new_link, new_token = await link_and_token(janus_client, room_id, "patient-1")
    assert new_link != old_link
    assert new_token != old_token
    assert await allowed(janus_client, janus, room) == {doctor_token, new_token}
    again = Publisher(http, janus.http_url, new_token)
    assert (await again.join(room, "patient-1"))["videoroom"] == "joined"

    # A retry repeats Janus's step: the new link revoked in turn, nothing else.
    response = await janus_client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 204
    assert await allowed(janus_client, janus, room) == {doctor_token}
    assert {k: v for k, v in (await again.event()).items() if k != "room"} == KICKED


async def test_a_removed_participant_is_kicked_kept_out_and_let_back_in(
    janus_client: Client, janus: JanusServer, clock: FrozenClock, http: aiohttp.ClientSession
) -> None:
    room_id = await create(janus_client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(janus_client, room_id)
    old_link, old_token = await link_and_token(janus_client, room_id, "patient-1")
    patient = Publisher(http, janus.http_url, old_token)
    assert (await patient.join(room, "patient-1"))["videoroom"] == "joined"

    response = await janus_client.put(block_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    assert {k: v for k, v in (await patient.event()).items() if k != "room"} == KICKED
    assert await allowed(janus_client, janus, room) == set()
    assert await join(janus_client, room_id, "patient-1") == (403, BLOCKED)
    assert await ending_of(janus_client, old_link) == (403, REMOVED)

    response = await janus_client.delete(block_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 204
    new_link, new_token = await link_and_token(janus_client, room_id, "patient-1")
    assert new_link != old_link
    assert await allowed(janus_client, janus, room) == {new_token}


async def test_janus_unreachable_or_refusing_answers_503_or_502_and_the_revocation_stays(
    janus_client: Client, janus: JanusServer, clock: FrozenClock
) -> None:
    room_id = await create(janus_client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(janus_client, room_id)
    old_link, _ = await link_and_token(janus_client, room_id, "patient-1")
    video = provider(janus_client)
    stored = await video.storage.get(f"room/{room}")
    assert stored is not None
    await video.storage.put(f"room/{room}", {"secret": "not-the-room-secret"}, stored.version)

    response = await janus_client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 502
    assert await response.json() == error(
        502,
        "The janus provider failed to revoke a participant's token: videoroom error 433: "
        "Unauthorized (wrong secret)",
        code="provider_bad_answer",
    )
    assert await ending_of(janus_client, old_link) == (410, REVOKED)  # written all the same

    janus.stop()
    response = await janus_client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 503
    assert await response.json() == error(
        503,
        "The janus provider failed to revoke a participant's token: cannot connect",
        code="provider_unavailable",
    )


async def test_a_janus_that_does_not_answer_the_kick_in_time_is_504_and_a_retry_answers_204(
    make_client: MakeClient,
    janus: JanusServer,
    clock: FrozenClock,
    http: aiohttp.ClientSession,
    aiohttp_server: Server,
) -> None:
    proxy = FaultyJanus(janus)
    url = await base_url(aiohttp_server, proxy.app())
    clock.now = real_now()
    environ = janus.environ(
        JANUS_URL=url + "/janus",
        JANUS_ALLOW_PLAIN_HTTP="true",
        JANUS_TIMEOUT_MS="300",
        JANUS_MAX_ATTEMPTS="1",
        UNLIMITED_TELECONSULTATION="false",
        CALL_PAGE_LOBBY="false",
    )
    client = await make_client(CONFIG, **environ, IMMUTABLE_PERIOD_MS=str(600_000))
    room_id = await create(client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    old_link, old_token = await link_and_token(client, room_id, "patient-1")
    patient = Publisher(http, janus.http_url, old_token)
    assert (await patient.join(room, "patient-1"))["videoroom"] == "joined"
    proxy.fail("kick", Fault(delay=0.6))

    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 504
    assert await response.json() == error(
        504,
        "The janus provider failed to kick a participant: no answer within 0.3 s",
        code="provider_timeout",
    )
    assert await ending_of(client, old_link) == (410, REVOKED)  # the revocation stays written
    assert await allowed(client, janus, room) == set()  # the step before the kick was done
    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 204  # the retry repeats Janus's step
    assert {k: v for k, v in (await patient.event()).items() if k != "room"} == KICKED
