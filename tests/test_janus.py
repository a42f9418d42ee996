"""The janus plugin through the HTTP API, against a real Janus (`tests/janus_server.py`).

Janus runs in a network namespace with token auth, a videoroom admin key and the event
handler on; the service runs here, on SQLite or MongoDB (mongomock). What Janus holds is
asked of Janus itself, over its HTTP API, with tokens this module signs from the secret the
test configured: rooms exist or not, are private, and let in only the allowed tokens. The
service's clock is put at the real time, since Janus checks tokens against its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from teleconsult_janus import JanusVideo
from teleconsult_janus.tokens import link_key

from teleconsult.callpage.links import Credential, LinkSigner
from teleconsult.core.domain import RoomParticipant, RoomSpec
from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    Refusal,
    create,
    error,
    join,
    path_of,
    provider_room,
    teleconsultation,
)
from tests.janus_server import (
    JanusServer,
    signed_token,
    videoroom,
)

PAGE_URL = "https://care.example.org"
CONFIG = {"privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}}}


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def around(now: datetime, number: int, *data: dict[str, Any]) -> dict[str, Any]:
    """A teleconsultation starting five minutes after `now`, for half an hour."""
    start = now + timedelta(minutes=5)
    end = start + timedelta(minutes=30)
    return teleconsultation(number, *data, start=start.isoformat(), end=end.isoformat())


def admin_token(janus: JanusServer) -> str:
    return signed_token(janus.token_secret, int(datetime.now(UTC).timestamp()) + 60)


async def exists(janus: JanusServer, room: str) -> bool:
    answer = await videoroom(
        janus.http_url, admin_token(janus), {"request": "exists", "room": int(room)}
    )
    return bool(answer["exists"])


@pytest.fixture
async def janus_client(make_client: MakeClient, janus: JanusServer, clock: FrozenClock) -> Client:
    clock.now = real_now()
    return await make_client(
        CONFIG,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            JANUS_PAGE_URL=PAGE_URL,
            UNLIMITED_TELECONSULTATION="false",
            IMMUTABLE_PERIOD_MS=str(600_000),
            CALL_PAGE_LOBBY="false",  # the lobby's tests: tests/test_janus_lobby.py
        ),
    )


def provider(client: Client) -> JanusVideo:
    video = client.app[SERVICES].video
    assert isinstance(video, JanusVideo)
    return video


async def test_a_consultation_makes_a_private_room_in_janus_hands_out_links_and_destroys_it(
    janus_client: Client, janus: JanusServer, clock: FrozenClock
) -> None:
    now = clock.now
    room_id = await create(janus_client, around(now, 3, DOCTOR, PATIENT, NURSE))
    room = await provider_room(janus_client, room_id)
    assert room.isdigit()
    assert 0 < int(room) < 2**53
    assert await exists(janus, room)

    # Private: Janus lists it to no one without the admin key.
    listed = await videoroom(janus.http_url, admin_token(janus), {"request": "list"})
    assert [r for r in listed["list"] if str(r["room"]) == room] == []
    # Only allowed tokens join it: a valid token of Janus's that teleconsult never allowed.
    refused = await videoroom(
        janus.http_url,
        admin_token(janus),
        {"request": "join", "ptype": "publisher", "room": int(room), "token": admin_token(janus)},
    )
    assert refused == {
        "videoroom": "event",
        "error_code": 433,
        "error": "Unauthorized (not in the allowed list)",
    }

    # Each participant's link: this service's call page, a credential for them and this room.
    links = {}
    for user in ("doctor-1", "patient-1", "nurse-1"):
        status, body = await join(janus_client, room_id, user)
        assert status == 200
        links[user] = body["accessLinkURL"]
        assert body["details"] == {"status": "waiting", "connected": []}
    signer = LinkSigner(link_key(janus.token_secret))
    lock = now + timedelta(minutes=5) - timedelta(minutes=10)
    end = now + timedelta(minutes=35) + timedelta(minutes=15)
    for user, link in links.items():
        prefix = PAGE_URL + "/janus/call/"
        assert link.startswith(prefix)
        assert signer.verify(link.removeprefix(prefix)) == Credential(
            room_id, room, user, math.floor(lock.timestamp()), math.ceil(end.timestamp()), "it"
        )

    response = await janus_client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert not await exists(janus, room)
    assert await provider(janus_client).storage.get(f"room/{room}") is None


async def test_a_creation_whose_answer_was_lost_is_repaired_by_asking_again(
    janus_client: Client, janus: JanusServer
) -> None:
    video = provider(janus_client)
    name = video.room_name()
    spec = RoomSpec(
        (RoomParticipant("doctor-1", True, ()), RoomParticipant("patient-1", False, ())),
        None,
        False,
        "none",
    )
    first = await video.create_named_room(name, spec)
    again = await video.create_named_room(name, spec)  # Janus answers 427: it is ours

    assert first == again
    assert first.provider_room_id == name
    assert await exists(janus, name)
    await video.delete_room(name)
    await video.delete_room(name)  # already gone: deleted
    assert not await exists(janus, name)


async def test_janus_refuses_a_wrong_admin_key_and_the_answer_names_the_operation(
    make_client: MakeClient, janus: JanusServer, clock: FrozenClock
) -> None:
    clock.now = real_now()
    client = await make_client(
        CONFIG,
        **janus.environ(JANUS_ALLOW_PLAIN_HTTP="true", JANUS_ADMIN_KEY="a-wrong-admin-key-xyz"),
    )

    response = await client.post("/teleconsultation", json=around(clock.now, 2, DOCTOR, PATIENT))

    assert response.status == 502
    assert await response.json() == error(
        502,
        "The janus provider failed to create a room: videoroom error 433: Unauthorized (wrong "
        "admin_key)",
        code="provider_bad_answer",
    )


async def test_a_stopped_janus_is_503_and_nothing_is_written(
    janus_client: Client, janus: JanusServer, clock: FrozenClock
) -> None:
    janus.stop()

    response = await janus_client.post(
        "/teleconsultation", json=around(clock.now, 2, DOCTOR, PATIENT)
    )

    assert response.status == 503
    assert await response.json() == error(
        503, "The janus provider failed to create a room: cannot connect",
        code="provider_unavailable",
    )  # fmt: skip
    counts = await janus_client.app[SERVICES].store.records.count_by_state()
    assert sum(counts.values()) == 0


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a Janus that hangs."""

    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    yield port
    server.close()
    for writer in writers:
        writer.close()
        await writer.wait_closed()
    await server.wait_closed()


async def test_a_janus_that_does_not_answer_in_time_is_504(
    make_client: MakeClient, janus: JanusServer, clock: FrozenClock, silent_port: int
) -> None:
    clock.now = real_now()
    client = await make_client(
        CONFIG,
        **janus.environ(
            JANUS_URL=f"http://127.0.0.1:{silent_port}/janus",
            JANUS_TIMEOUT_MS="200",
            JANUS_MAX_ATTEMPTS="2",
            JANUS_ALLOW_PLAIN_HTTP="true",
        ),
    )

    response = await client.post("/teleconsultation", json=around(clock.now, 2, DOCTOR, PATIENT))

    assert response.status == 504
    assert await response.json() == error(
        504, "The janus provider failed to create a room: no answer within 0.2 s",
        code="provider_timeout",
    )  # fmt: skip


GOOD = {
    "VIDEO_PROVIDER": "janus",
    "JANUS_URL": "https://janus.example.org/janus",
    "JANUS_PUBLIC_URL": "wss://janus.example.org/ws",
    "JANUS_ADMIN_KEY": "an-admin-key-of-some-length",
    "JANUS_TOKEN_SECRET": "a-token-secret-of-at-least-32-characters",
}


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {**GOOD, "JANUS_URL": ""},
            "VIDEO_PROVIDER=janus needs JANUS_URL, Janus's HTTP API (for example "
            "https://janus:8089/janus).",
        ),
        (
            {**GOOD, "JANUS_TOKEN_SECRET": "short"},
            "JANUS_TOKEN_SECRET must be at least 32 characters (for example the output of "
            "`openssl rand -base64 32`).",
        ),
        (
            {**GOOD, "JANUS_URL": "http://janus.example.org/janus"},
            "JANUS_URL must use https:// (plain http:// is accepted for a loopback host, or with "
            "JANUS_ALLOW_PLAIN_HTTP=true); got 'http://janus.example.org/janus'.",
        ),
        (
            {**GOOD, "JANUS_PUBLIC_URL": "ftp://janus.example.org"},
            "JANUS_PUBLIC_URL must be a wss:// URL; got 'ftp://janus.example.org'.",
        ),
    ],
)
def test_bad_configuration_stops_the_start_with_one_line(
    serve_refusal: Refusal, environ: dict[str, str], line: str
) -> None:
    assert serve_refusal(environ) == f"teleconsult: configuration error: {line}\n"


async def token_of(client: Client, room_id: str, user: str) -> tuple[int, dict[str, Any]]:
    """What the participant's page gets from POST <link>/token."""
    _, body = await join(client, room_id, user)
    response = await client.post(path_of(body["accessLinkURL"]) + "/token")
    return response.status, await response.json()


async def test_a_page_that_may_enter_gets_a_token_janus_accepts_and_janus_refuses_the_rest(
    janus_client: Client, janus: JanusServer, clock: FrozenClock
) -> None:
    now = clock.now
    first = await create(janus_client, around(now, 2, DOCTOR, PATIENT))
    other = await create(janus_client, around(now, 2, DOCTOR, NURSE))
    room = await provider_room(janus_client, first)
    other_room = await provider_room(janus_client, other)

    _, seat = await join(janus_client, first, "patient-1")
    link = path_of(seat["accessLinkURL"])
    status, access = await token_of(janus_client, first, "patient-1")

    assert status == 200
    end = math.ceil((now + timedelta(minutes=35 + 15)).timestamp())
    assert access == {
        "token": signed_token(janus.token_secret, end, f"teleconsult.{room}.patient-1"),
        "room": int(room),
        "server": janus.ws_url,
        "display": "patient-1",
        "iceServers": [],
        "iceTransportPolicy": "all",
    }
    token = access["token"]

    async def join_as(token: str, room: str) -> dict[str, Any]:
        body = {"request": "join", "ptype": "publisher", "room": int(room), "token": token}
        return await videoroom(janus.http_url, token, body)

    joined = await join_as(token, room)
    assert (joined["videoroom"], joined["room"]) == ("joined", int(room))
    # Janus itself refuses: this token in another room, an expired token, another
    # consultation's participant in this room.
    not_allowed = {
        "videoroom": "event",
        "error_code": 433,
        "error": "Unauthorized (not in the allowed list)",
    }
    assert await join_as(token, other_room) == not_allowed
    _, nurse = await token_of(janus_client, other, "nurse-1")
    assert await join_as(nurse["token"], room) == not_allowed
    expired = signed_token(janus.token_secret, int(real_now().timestamp()) - 1, "x")
    assert await join_as(expired, room) == {"janus_error": 403}

    # Cancelled: the room is gone from Janus, and the link gets no token any more.
    response = await janus_client.delete(f"/teleconsultation/{first}")
    assert response.status == 204
    gone = await join_as(token, room)
    assert gone["error_code"] == 426  # no such room
    response = await janus_client.post(link + "/token")
    assert response.status == 410
    assert (await response.json())["reason"] == "cancelled"


async def test_the_page_offers_each_level_its_tools_and_janus_wants_a_subscriptions_page(
    make_client: MakeClient, janus: JanusServer, clock: FrozenClock
) -> None:
    clock.now = real_now()
    tool_less_patients = {
        "privileges": {
            "basic": {"groups": ["patient"], "tools": {"file_upload": True}},
            "plus": {"groups": ["doctor"]},
        }
    }
    client = await make_client(
        tool_less_patients,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            JANUS_PAGE_URL=PAGE_URL,
            UNLIMITED_TELECONSULTATION="false",
            IMMUTABLE_PERIOD_MS=str(600_000),
        ),
    )
    room_id = await create(client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    links = {}
    for user in ("doctor-1", "patient-1"):
        _, seat = await join(client, room_id, user)
        links[user] = path_of(seat["accessLinkURL"])

    for user, tools in (("doctor-1", ["chat", "screen_sharing"]), ("patient-1", [])):
        response = await client.get(links[user] + "/tools")
        assert (response.status, await response.json()) == (200, {"tools": tools})
        assert response.headers["Cache-Control"] == "no-store"
    # What each page knows of the others' levels: a chat from a feed without the tool is
    # dropped by the receiving page (Janus relays data channels unchecked).
    response = await client.get(links["patient-1"] + "/info")
    assert response.status == 200
    assert [(p["id"], p["tools"]) for p in (await response.json())["participants"]] == [
        ("doctor-1", ["chat", "screen_sharing"]),
        ("patient-1", []),
    ]

    # A subscription must name its page's own feed (`require_pvtid`), so a kick ends it too.
    asked: dict[str, object] = {"request": "list", "admin_key": janus.admin_key}
    listed = await videoroom(janus.http_url, admin_token(janus), asked)
    assert [r["require_pvtid"] for r in listed["list"] if str(r["room"]) == room] == [True]


async def test_a_room_janus_forgot_in_a_restart_is_made_again_when_its_pages_come_back(
    janus_client: Client, janus: JanusServer, clock: FrozenClock
) -> None:
    room_id = await create(janus_client, around(clock.now, 2, DOCTOR, PATIENT))
    room = await provider_room(janus_client, room_id)
    _, before = await token_of(janus_client, room_id, "patient-1")

    await janus.restart()  # rooms made through Janus's API live in its memory only
    assert not await exists(janus, room)

    status, after = await token_of(janus_client, room_id, "patient-1")  # the page reconnects
    assert status == 200
    assert after == before  # the same room and token
    assert await exists(janus, room)
    body = {"request": "join", "ptype": "publisher", "room": int(room), "token": after["token"]}
    joined = await videoroom(janus.http_url, after["token"], body)
    assert joined["videoroom"] == "joined"
    response = await janus_client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204  # destroyed with the secret it was made again with
    assert not await exists(janus, room)
