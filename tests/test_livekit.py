"""The livekit plugin through the HTTP API, against the fake RoomService (`tests/fakes/livekit.py`).

The fake verifies the Authorization token of every call the SDK makes, as livekit-server
does, and decodes the protobuf bodies it sends. Every token the service hands out is
verified with the SDK's own `TokenVerifier` (signature, issuer, `nbf`/`exp` against the
real time) and its identity, name, room and grants compared whole; its `nbf` and `exp`
are compared with the consultation's window to the second. So these tests put the
service's clock at the real time when a token is handed out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from livekit import api
from livekit.protocol import models
from teleconsult_livekit import LiveKitVideo
from yarl import URL

from teleconsult.services import SERVICES
from tests.fakes.livekit import FakeLiveKit, Fault
from tests.helpers import (
    DOCTOR,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    Refusal,
    create,
    error,
    free_port,
    join,
    livekit_env,
    person,
    provider_room,
    stored_document,
    teleconsultation,
    unix,
)

CONFIG = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"chat": True}},
        "plus": {"groups": ["doctor"]},
    }
}
ROOM_NAME = re.compile(r"teleconsult-[0-9a-f]{32}")
VERIFIER = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET)
CAMERA_AND_MICROPHONE = ["camera", "microphone"]
SCREEN = ["screen_share", "screen_share_audio"]


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def around(now: datetime, number: int, *data: dict[str, Any]) -> dict[str, Any]:
    """A teleconsultation starting five minutes after `now`, for half an hour."""
    start = now + timedelta(minutes=5)
    end = start + timedelta(minutes=30)
    return teleconsultation(number, *data, start=start.isoformat(), end=end.isoformat())


def token_of(link: str, livekit_url: str) -> str:
    """The token of a link made from the default template, which must point at our server."""
    url = URL(link)
    assert (url.scheme, url.host, url.path) == ("https", "meet.livekit.io", "/custom")
    assert list(url.query) == ["liveKitUrl", "token"]
    assert url.query["liveKitUrl"] == "ws" + livekit_url.removeprefix("http")
    return url.query["token"]


def window_of(token: str) -> tuple[int, int]:
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"sub", "iss", "nbf", "exp", "name", "video"}
    return claims["nbf"], claims["exp"]


def join_grants(room: str, admin: bool, data: bool, sources: list[str]) -> api.VideoGrants:
    return api.VideoGrants(
        room_join=True,
        room=room,
        room_admin=admin,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=data,
        can_publish_sources=sources,
    )


@pytest.fixture
async def livekit_client(make_client: MakeClient, livekit_url: str) -> Client:
    return await make_client(
        CONFIG,
        **livekit_env(
            livekit_url, UNLIMITED_TELECONSULTATION="false", IMMUTABLE_PERIOD_MS=str(600_000)
        ),
    )


async def test_the_whole_flow_through_livekit(
    livekit_client: Client, livekit: FakeLiveKit, livekit_url: str, clock: FrozenClock
) -> None:
    now = real_now()
    clock.now = now - timedelta(hours=1)  # before the lock: the call can still change
    body = around(now, 3, DOCTOR, PATIENT)
    room_id = await create(livekit_client, body)
    assert livekit.calls == []  # LiveKit has no users: nobody to create

    # The last participant arrives: the room, under a name we chose.
    response = await livekit_client.post(
        f"/teleconsultation/{room_id}/participants/data", json=NURSE
    )
    assert response.status == 201
    first = await provider_room(livekit_client, room_id)
    assert ROOM_NAME.fullmatch(first)
    assert [(c.method, c.request, c.content_type) for c in livekit.calls] == [
        (
            "CreateRoom",
            api.CreateRoomRequest(name=first, max_participants=3),
            "application/protobuf",  # what the SDK really sends
        )
    ]
    assert (await join(livekit_client, room_id, "nurse-1"))[1]["accessLinkURL"] is None

    # A change of participants: a new room first, then the old one deleted.
    livekit.calls.clear()
    response = await livekit_client.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [DOCTOR, PATIENT]}},
    )
    assert response.status == 204
    room = await provider_room(livekit_client, room_id)
    assert [(c.method, c.request) for c in livekit.calls] == [
        ("CreateRoom", api.CreateRoomRequest(name=room, max_participants=2)),
        ("DeleteRoom", api.DeleteRoomRequest(room=first)),
    ]
    assert set(livekit.rooms) == {room}

    # Locked: each participant gets a token for this room, valid in the window.
    clock.now = now
    lock = now + timedelta(minutes=5) - timedelta(minutes=10)
    end = now + timedelta(minutes=35)
    links = {
        user: (await join(livekit_client, room_id, user))[1] for user in ("doctor-1", "patient-1")
    }
    for user, name, admin, data, sources in [
        ("doctor-1", "Joe Smith", True, True, CAMERA_AND_MICROPHONE + SCREEN),
        ("patient-1", "Jane Doe", False, True, CAMERA_AND_MICROPHONE),
    ]:
        token = token_of(links[user]["accessLinkURL"], livekit_url)
        claims = VERIFIER.verify(token)
        assert (claims.identity, claims.name) == (user, name)
        assert claims.video == join_grants(room, admin, data, sources)
        assert window_of(token) == (unix(lock), unix(end + timedelta(minutes=15)))
        livekit.join(token)  # as the participant's LiveKit client connects
    assert set(livekit.participants[room]) == {"doctor-1", "patient-1"}
    assert (await stored_document(livekit_client, room_id))["room"]["links"] == {}  # none kept

    # Cancelled: the room is deleted, which disconnects everyone.
    livekit.calls.clear()
    response = await livekit_client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert [(c.method, c.request) for c in livekit.calls] == [
        ("DeleteRoom", api.DeleteRoomRequest(room=room))
    ]
    assert livekit.rooms == {}
    assert livekit.participants == {}


async def test_a_room_without_a_duration_gets_tokens_for_the_maximum_lifetime(
    make_client: MakeClient, livekit_url: str, clock: FrozenClock
) -> None:
    client = await make_client(
        CONFIG, **livekit_env(livekit_url, LIVEKIT_MAX_LIFETIME_MS=str(2 * 3600 * 1000))
    )
    clock.now = now = real_now()
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT, start=now.isoformat()))

    _, body = await join(client, room_id, "patient-1")

    token = token_of(body["accessLinkURL"], livekit_url)
    VERIFIER.verify(token)
    assert window_of(token) == (unix(now), unix(now + timedelta(hours=2)))


async def test_tools_without_chat_or_files_publish_no_data(
    make_client: MakeClient, livekit_url: str, clock: FrozenClock
) -> None:
    config = {
        "privileges": {
            "basic": {"groups": ["patient"], "tools": {"screen_sharing": True, "whiteboard": True}},
            "plus": {"groups": ["doctor"]},
        }
    }
    client = await make_client(config, **livekit_env(livekit_url))
    clock.now = now = real_now()
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT, start=now.isoformat()))
    room = await provider_room(client, room_id)

    _, body = await join(client, room_id, "patient-1")

    claims = VERIFIER.verify(token_of(body["accessLinkURL"], livekit_url))
    assert claims.video == join_grants(room, False, False, CAMERA_AND_MICROPHONE + SCREEN)


async def test_a_token_handed_out_after_its_window_lets_nobody_in(
    livekit_client: Client, livekit: FakeLiveKit, livekit_url: str, clock: FrozenClock
) -> None:
    now = real_now()
    ended = teleconsultation(
        2,
        DOCTOR,
        PATIENT,
        start=(now - timedelta(hours=3)).isoformat(),
        end=(now - timedelta(hours=2)).isoformat(),
    )
    clock.now = now - timedelta(hours=4)  # made while it was ahead
    room_id = await create(livekit_client, ended)

    clock.now = now
    _, body = await join(livekit_client, room_id, "doctor-1")

    token = token_of(body["accessLinkURL"], livekit_url)
    with pytest.raises(jwt.ExpiredSignatureError):
        livekit.join(token)  # the end plus 15 minutes has passed


async def test_details_say_who_is_connected(
    livekit_client: Client, livekit: FakeLiveKit, clock: FrozenClock
) -> None:
    room_id = await create(livekit_client, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(livekit_client, room_id)
    livekit.participants[room]["doctor-1"] = models.ParticipantInfo(
        identity="doctor-1", name="Joe Smith", state=models.ParticipantInfo.ACTIVE
    )

    _, body = await join(livekit_client, room_id, "patient-1")

    assert body["details"] == {"status": "ongoing", "connected": ["doctor-1"]}
    [call] = livekit.calls_to("ListParticipants")
    assert call.request == api.ListParticipantsRequest(room=room)


async def test_credentials_are_a_token_for_the_caller_that_opens_no_room(
    livekit_client: Client, clock: FrozenClock
) -> None:
    clock.now = now = real_now()

    response = await livekit_client.post(
        "/credentials", json={"expiresIn": 600}, headers={"miauserid": "doctor-1"}
    )

    assert response.status == 201
    body = await response.json()
    expires = now + timedelta(seconds=600)
    assert body == {
        "accessToken": body["accessToken"],
        "expiresAt": expires.isoformat().replace("+00:00", "Z"),
        "bandyerUserId": "doctor-1",
    }
    claims = VERIFIER.verify(body["accessToken"])
    assert claims.identity == "doctor-1"
    assert claims.video == api.VideoGrants(
        can_publish=False, can_subscribe=False, can_publish_data=False
    )
    assert jwt.decode(body["accessToken"], options={"verify_signature": False})["exp"] == unix(
        expires
    )

    response = await livekit_client.post(
        "/credentials", json={"expiresIn": 30}, headers={"miauserid": "doctor-1"}
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        "expiresIn must be between 60 and 86400 seconds for this video provider; got 30.",
        path="expiresIn",
    )


async def test_a_lost_creation_answer_is_repaired_by_asking_again(
    livekit_client: Client, livekit: FakeLiveKit
) -> None:
    livekit.fail("CreateRoom", Fault(lost=True, delay=1.0))  # made, but the answer comes late

    room_id = await create(livekit_client, teleconsultation(2, DOCTOR, PATIENT))

    [first, second] = livekit.calls_to("CreateRoom")
    assert first.request == second.request  # the same name: CreateRoom answers that room
    assert set(livekit.rooms) == {await provider_room(livekit_client, room_id)}


FAULTS = [
    (
        Fault(status=400, code="invalid_argument", message="bad name"),
        502,
        "HTTP 400 (invalid_argument): bad name",
        1,
    ),
    (Fault(status=500, times=2), 502, "HTTP 500 (internal): injected fault", 2),
    (
        Fault(status=503, code="unavailable", times=2),
        503,
        "HTTP 503 (unavailable): injected fault",
        2,
    ),
    (Fault(delay=1.0, times=2), 504, "no answer within 0.2 s", 2),
    (Fault(malformed=True), 502, "the answer is not a RoomService message", 1),
    (Fault(disconnect=True, times=2), 503, "connection failed (ServerDisconnectedError)", 2),
]


@pytest.mark.parametrize(("fault", "status", "detail", "calls"), FAULTS)
async def test_a_failure_is_a_gateway_error_naming_the_operation(
    make_client: MakeClient,
    livekit_url: str,
    livekit: FakeLiveKit,
    fault: Fault,
    status: int,
    detail: str,
    calls: int,
) -> None:
    # A short timeout only where the fault is a slow answer: elsewhere a busy machine's
    # pause must not turn the expected answer into a timeout.
    timeout = "200" if fault.delay else "5000"
    client = await make_client(
        **livekit_env(livekit_url, LIVEKIT_TIMEOUT_MS=timeout, LIVEKIT_MAX_ATTEMPTS="2")
    )
    livekit.fail("CreateRoom", fault)

    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == status
    assert await response.json() == error(
        status, f"The livekit provider failed to create a room: {detail}"
    )
    assert len(livekit.calls_to("CreateRoom")) == calls


async def test_an_unreachable_server_is_a_503(make_client: MakeClient) -> None:
    client = await make_client(
        **livekit_env(f"http://127.0.0.1:{free_port()}", LIVEKIT_MAX_ATTEMPTS="2")
    )

    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == 503
    assert await response.json() == error(
        503, "The livekit provider failed to create a room: cannot connect"
    )
    response = await client.get("/-/check-up")
    assert response.status == 503


async def test_a_wrong_secret_is_a_502_that_does_not_show_it(
    make_client: MakeClient, livekit_url: str
) -> None:
    secret = "not-the-secret-livekit-knows-0123456789"
    client = await make_client(**livekit_env(livekit_url, LIVEKIT_API_SECRET=secret))

    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == 502
    assert secret not in await response.text()
    assert await response.json() == error(
        502,
        "The livekit provider failed to create a room: "
        "HTTP 401 (unauthenticated): invalid token: InvalidSignatureError",
    )


async def test_a_room_already_gone_counts_as_deleted(
    livekit_client: Client, livekit: FakeLiveKit
) -> None:
    room_id = await create(livekit_client, teleconsultation(2, DOCTOR, PATIENT))
    livekit.rooms.clear()  # closed on LiveKit's side (nobody joined before its empty timeout)

    response = await livekit_client.delete(f"/teleconsultation/{room_id}")

    assert response.status == 204
    assert len(livekit.calls_to("DeleteRoom")) == 1
    assert await livekit_client.app[SERVICES].store.outbox.job_backlog() == (0, None)


async def test_the_check_up_lists_rooms(livekit_client: Client, livekit: FakeLiveKit) -> None:
    response = await livekit_client.get("/-/check-up")
    assert response.status == 200
    [call] = livekit.calls_to("ListRooms")
    assert call.request == api.ListRoomsRequest(names=["teleconsult-check"])


async def test_the_http_session_lives_and_dies_with_the_app(
    make_client: MakeClient, livekit_url: str
) -> None:
    client = await make_client(**livekit_env(livekit_url))
    provider = client.app[SERVICES].video
    assert isinstance(provider, LiveKitVideo)
    session = provider.rooms.session
    assert not session.closed

    await client.close()

    assert session.closed


async def test_no_secret_token_or_name_reaches_the_log(
    livekit_client: Client, livekit: FakeLiveKit, clock: FrozenClock, log_lines: LogLines
) -> None:
    clock.now = now = real_now()
    room_id = await create(livekit_client, around(now, 3, DOCTOR, PATIENT))
    livekit.fail("CreateRoom", Fault(status=500))  # a failure is logged, then retried
    nurse = person("nurse-1", ["patient"], "Ann Lee")
    response = await livekit_client.post(
        f"/teleconsultation/{room_id}/participants/data", json=nurse
    )
    assert response.status == 201
    links = [
        (await join(livekit_client, room_id, user))[1]["accessLinkURL"]
        for user in ("doctor-1", "nurse-1")
    ]
    response = await livekit_client.post("/credentials", headers={"miauserid": "doctor-1"})
    token = (await response.json())["accessToken"]
    assert (await livekit_client.delete(f"/teleconsultation/{room_id}")).status == 204

    assert "livekit create a room failed" in log_lines.text
    secrets_and_names = [LIVEKIT_SECRET, LIVEKIT_KEY, "Joe Smith", "Jane Doe", "Ann Lee", token]
    secrets_and_names += links + [URL(link).query["token"] for link in links]
    assert [value for value in secrets_and_names if value in log_lines.text] == []


GOOD = {"VIDEO_PROVIDER": "livekit", "LIVEKIT_URL": "https://lk.example.org",
        "LIVEKIT_API_KEY": LIVEKIT_KEY, "LIVEKIT_API_SECRET": LIVEKIT_SECRET}  # fmt: skip


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {**GOOD, "LIVEKIT_URL": ""},
            "VIDEO_PROVIDER=livekit needs LIVEKIT_URL, the LiveKit server's https URL "
            "(for example https://lk.example.org).",
        ),
        (
            {**GOOD, "LIVEKIT_URL": "http://lk.example.org"},
            "LIVEKIT_URL must be an https URL (http is accepted for a loopback host only); "
            "got 'http://lk.example.org'.",
        ),
        (
            {**GOOD, "LIVEKIT_API_KEY": ""},
            "VIDEO_PROVIDER=livekit needs LIVEKIT_API_KEY, the API key.",
        ),
        (
            {**GOOD, "LIVEKIT_API_SECRET": ""},
            "VIDEO_PROVIDER=livekit needs LIVEKIT_API_SECRET, the API key's secret.",
        ),
        (
            {**GOOD, "LIVEKIT_API_SECRET": "too-short"},
            "LIVEKIT_API_SECRET must be at least 32 characters, as LiveKit requires.",
        ),
        (
            {**GOOD, "LIVEKIT_JOIN_URL_TEMPLATE": "https://call.example.org/{room}?t={jwt}"},
            "LIVEKIT_JOIN_URL_TEMPLATE may use the fields {url}, {token} and {room}, and must "
            "use {token}; got 'https://call.example.org/{room}?t={jwt}'.",
        ),
        (
            {**GOOD, "LIVEKIT_JOIN_URL_TEMPLATE": "https://call.example.org/{room}"},
            "LIVEKIT_JOIN_URL_TEMPLATE may use the fields {url}, {token} and {room}, and must "
            "use {token}; got 'https://call.example.org/{room}'.",
        ),
        (
            {**GOOD, "LIVEKIT_JOIN_URL_TEMPLATE": "https://call.example.org/?t={token"},
            "LIVEKIT_JOIN_URL_TEMPLATE is not a valid template (expected '}' before end of "
            "string); got 'https://call.example.org/?t={token'.",
        ),
        (
            {**GOOD, "LIVEKIT_JOIN_URL_TEMPLATE": "http://call.example.org/?t={token}"},
            "LIVEKIT_JOIN_URL_TEMPLATE must be an https URL (http is accepted for a loopback "
            "host only); got 'http://call.example.org/?t={token}'.",
        ),
        (
            {**GOOD, "LIVEKIT_MAX_PARTICIPANTS": "1"},
            "LIVEKIT_MAX_PARTICIPANTS must be at least 2 and at most 1000; got 1.",
        ),
    ],
)
def test_bad_configuration_stops_the_start_with_one_line(
    serve_refusal: Refusal, environ: dict[str, str], line: str
) -> None:
    assert serve_refusal(environ) == f"teleconsult: configuration error: {line}\n"


async def test_a_custom_template_gets_each_field_url_encoded(
    make_client: MakeClient, livekit_url: str, clock: FrozenClock
) -> None:
    template = "https://call.example.org/room/{room}?server={url}#{token}"
    client = await make_client(**livekit_env(livekit_url, LIVEKIT_JOIN_URL_TEMPLATE=template))
    clock.now = now = real_now()
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT, start=now.isoformat()))
    room = await provider_room(client, room_id)

    _, body = await join(client, room_id, "doctor-1")

    url = URL(body["accessLinkURL"])
    assert (url.host, url.path) == ("call.example.org", f"/room/{room}")
    assert url.query["server"] == "ws" + livekit_url.removeprefix("http")
    assert VERIFIER.verify(url.fragment).video == join_grants(
        room, True, True, CAMERA_AND_MICROPHONE + SCREEN
    )


async def test_the_fake_answers_json_as_livekit_does(
    livekit: FakeLiveKit, livekit_url: str
) -> None:
    """The fake speaks Twirp's JSON too (what LiveKit's docs show with curl), though the SDK
    sends protobuf; a call without the grant its method needs is refused."""
    creator = api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET).with_grants(
        api.VideoGrants(room_create=True)
    )
    url = f"{livekit_url}/twirp/livekit.RoomService/CreateRoom"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url, json={"name": "room-1"}, headers={"Authorization": f"Bearer {creator.to_jwt()}"}
        ) as response:
            assert response.status == 200
            assert (await response.json())["name"] == "room-1"
        lister = api.AccessToken(LIVEKIT_KEY, LIVEKIT_SECRET).with_grants(
            api.VideoGrants(room_list=True)
        )
        async with session.post(
            url, json={"name": "room-2"}, headers={"Authorization": f"Bearer {lister.to_jwt()}"}
        ) as response:
            assert response.status == 401
            assert await response.json() == {"code": "unauthenticated", "msg": "permissions denied"}
    assert set(livekit.rooms) == {"room-1"}
