"""The webrtc provider through its links, as a browser would use them: the page, its info,
its assets and its WebSocket, against one app (tests/test_webrtc_replicas.py has two).

Teleconsultations are made and cancelled through the HTTP API; the frozen clock opens
and closes the links' windows.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSServerHandshakeError, web
from teleconsult_webrtc import WebRTCVideo, messages, signaling
from teleconsult_webrtc.rooms import Peer, Refused, RoomState, seat

from teleconsult.app import create_app
from teleconsult.callpage import CONTENT_SECURITY_POLICY
from teleconsult.callpage.catalogs import BUILT_IN
from teleconsult.callpage.ice import turn_credentials
from teleconsult.callpage.links import Credential, LinkSigner
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.errors import ConfigurationError
from teleconsult.plugin import VIDEO_PROVIDER
from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    STARTED,
    TEXTS,
    WEBRTC,
    AppClient,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    Server,
    closing,
    error,
    introduced,
    join,
    open_call,
    path_of,
    person,
    relay,
    teleconsultation,
    webrtc_call,
)
from tests.test_webhooks import SECRET as WEBHOOK_SECRET
from tests.test_webhooks import Receiver, deliver_all, start_receiver

RELATIVE = person("relative-1", ["patient"], "Bob Ray", "en")
SECRET = "s" * 32
OTHER_SECRET = b"o" * 32
IT = TEXTS["it"]


def provider(client: Client) -> WebRTCVideo:
    found = client.app[SERVICES].video
    assert isinstance(found, WebRTCVideo)
    return found


async def room_of(client: Client, room_id: str) -> str:
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None
    return record.room.provider_room_id


@dataclass
class InCall:
    """A locked teleconsultation whose pages are connected."""

    client: Client
    room_id: str
    links: dict[str, str]
    pages: dict[str, ClientWebSocketResponse]
    """Each connected page's WebSocket, by external id."""
    ids: dict[str, str]
    """Each connected page's peer id, by external id."""


async def in_call(
    make_client: MakeClient,
    clock: FrozenClock,
    people: tuple[dict[str, Any], ...] = (DOCTOR, PATIENT),
    connected: tuple[str, ...] = ("doctor-1", "patient-1"),
    config: dict[str, Any] | None = None,
    **environ: str,
) -> InCall:
    """`people`'s teleconsultation, locked, with the pages of `connected` joined in that
    order; each page has read the arrival of those after it."""
    client = await make_client(config, **WEBRTC, **environ)
    room_id, links = await webrtc_call(client, clock, *people)
    pages, ids = {}, {}
    for user in connected:
        pages[user], joined = await open_call(client, links[user])
        ids[user] = joined["self"]["id"]
    for earlier, user in enumerate(connected):
        for _ in connected[earlier + 1 :]:
            assert (await pages[user].receive_json(timeout=5))["type"] == "peer-joined"
    return InCall(client, room_id, links, pages, ids)


def payload(link: str) -> Any:
    encoded = path_of(link).rsplit("/", 1)[1].split(".")[0]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


# -- the page ----------------------------------------------------------------------------------


async def test_each_link_opens_the_call_page_with_no_name_in_it(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    started = int(STARTED.timestamp())
    for user, link in links.items():
        assert link.startswith("http://127.0.0.1:3000/webrtc/call/")
        assert payload(link) == {
            "t": room_id,
            "r": await room_of(client, room_id),
            "u": user,
            "nb": started,
            "exp": started + 24 * 3600,  # unlimited rooms: the start plus WEBRTC_MAX_LIFETIME_MS
            "l": "it",
        }
        response = await client.get(path_of(link))
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        page = await response.text()
        assert '<html lang="it">' in page
        assert '<script type="module" src="../assets/call.js"></script>' in page
        assert not {"Joe", "Smith", "Jane", "Doe"} & set(page.split() + link.split("/"))
    assert links["doctor-1"] != links["patient-1"]


async def test_the_info_names_the_participants_from_the_record(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    response = await client.get(path_of(links["patient-1"]) + "/info")

    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.json() == {
        "language": "it",
        "texts": BUILT_IN["it"],
        "self": {"name": "Jane Doe", "isAdmin": False},
        "participants": [
            {"name": "Joe Smith", "isAdmin": True, "self": False},
            {"name": "Jane Doe", "isAdmin": False, "self": True},
        ],
        "schedule": {
            "opensAt": "2030-02-22T15:30:00.000Z",
            "startsAt": "2030-02-22T15:30:00.000Z",
            "endsAt": "2030-02-22T16:30:00.000Z",
            "limited": False,
        },
        "iceServers": [],
        "iceTransportPolicy": "all",
        "maxParticipants": 4,
    }
    assert IT["join"] == "Entra"
    assert TEXTS["en"]["join"] == "Join"


async def test_the_language_asked_for_is_the_pages(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    room_id, _ = await webrtc_call(client, clock, DOCTOR, PATIENT)
    response = await client.get(
        f"/teleconsultation/{room_id}?language=en", headers={"miauserid": "patient-1"}
    )
    link = (await response.json())["accessLinkURL"]

    info = await (await client.get(path_of(link) + "/info")).json()

    assert (info["language"], info["texts"]["join"]) == ("en", "Join")


def test_every_language_has_every_text() -> None:
    assert set(BUILT_IN) == {"en", "it", "de", "fr", "es", "pl", "pt", "nl"}
    for catalog in BUILT_IN.values():
        assert set(catalog) == set(BUILT_IN["en"])


async def test_the_assets_are_served_by_the_app(make_client: MakeClient) -> None:
    client = await make_client(**WEBRTC)

    script = await client.get("/webrtc/assets/call.js")
    style = await client.get("/webrtc/assets/call.css")
    again = await client.get(
        "/webrtc/assets/call.js", headers={"If-None-Match": script.headers["ETag"]}
    )
    missing = await client.get("/webrtc/assets/other.js")

    assert (script.status, script.content_type) == (200, "text/javascript")
    assert (style.status, style.content_type) == (200, "text/css")
    assert "window.__call" in await script.text()
    assert script.headers["Cache-Control"] == "no-cache"
    assert script.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert again.status == 304
    assert missing.status == 404


async def test_the_ice_servers_carry_turn_credentials_as_long_as_the_link(
    make_client: MakeClient, clock: FrozenClock, log_lines: LogLines
) -> None:
    client = await make_client(
        **WEBRTC,
        WEBRTC_STUN_URLS="stun:turn.example.org:3478",
        WEBRTC_TURN_URLS="turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349",
        WEBRTC_TURN_SECRET="turn-shared-secret",
    )
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    info = await (await client.get(path_of(links["doctor-1"]) + "/info")).json()

    stun, turn = info["iceServers"]
    assert stun == {"urls": ["stun:turn.example.org:3478"]}
    assert turn["urls"] == [
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:5349",
    ]
    expiry, user = turn["username"].split(":")
    assert int(expiry) == payload(links["doctor-1"])["exp"]
    assert user not in ("doctor-1", "Joe Smith")  # an opaque id: TURN servers log it
    digest = hmac.new(b"turn-shared-secret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    assert "turn-shared-secret" not in log_lines.text


def test_turn_credentials_follow_coturns_use_auth_secret() -> None:
    # printf %s 1700000000:alice | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert turn_credentials("s3cret", "alice", 1_700_000_000) == (
        "1700000000:alice",
        "TtElzSjT0GdnTQ9xdcRNxx96yQs=",
    )


# -- links that open nothing -------------------------------------------------------------------


async def refused(client: Client, link: str, status: int, text: str, **headers: str) -> None:
    """The page is a short HTML page saying why, the info the same as JSON, and the WebSocket
    is refused before the upgrade."""
    page = await client.get(path_of(link), headers=headers)
    assert (page.status, page.content_type) == (status, "text/html")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert escape(text) in await page.text()
    info = await client.get(path_of(link) + "/info", headers=headers)
    assert info.status == status
    assert (await info.json())["message"] == text
    with pytest.raises(WSServerHandshakeError) as refusal:
        await client.ws_connect(path_of(link) + "/ws", headers=headers)
    assert refusal.value.status == status


def forged(link: str) -> str:
    return link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("forged", 404, IT["invalid"]),  # the browser's language: the link names nobody
        ("signed with another secret", 404, IT["invalid"]),
        ("not valid text", 404, IT["invalid"]),
        ("not open yet", 403, IT["not_open"]),
        ("expired", 410, IT["expired"]),
        ("cancelled", 410, IT["cancelled"]),
        ("replaced", 410, IT["gone"]),
        ("for someone not in the teleconsultation", 410, IT["gone"]),
    ],
)
async def test_a_link_that_opens_nothing_gets_a_page_saying_why(
    make_client: MakeClient, clock: FrozenClock, case: str, status: int, text: str
) -> None:
    client = await make_client(**WEBRTC, WEBRTC_LINK_SECRET=SECRET)
    room_id, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    link = links["doctor-1"]
    fields = payload(link)
    credential = Credential(
        fields["t"], fields["r"], "intruder-1", fields["nb"], fields["exp"], fields["l"]
    )
    prefix = link.rsplit("/", 1)[0] + "/"
    if case == "forged":
        link = forged(link)
    elif case == "signed with another secret":
        link = prefix + LinkSigner(OTHER_SECRET).sign(credential)
    elif case == "not valid text":
        link = prefix + "%E2%98%83.%E2%98%83"
    elif case == "not open yet":
        clock.advance(seconds=-1)
    elif case == "expired":
        clock.advance(hours=24)
    elif case == "cancelled":
        assert (await client.delete(f"/teleconsultation/{room_id}")).status == 204
    elif case == "replaced":  # before the lock, a new participant makes a new room
        clock.advance(hours=-1)
        response = await client.patch(
            f"/teleconsultation/{room_id}",
            json={"participants": {"number": 2, "data": [DOCTOR, NURSE]}},
        )
        assert response.status == 204
        clock.advance(hours=1)
        status_, body = await join(client, room_id, "doctor-1")
        assert status_ == 200
        assert (await client.get(path_of(body["accessLinkURL"]))).status == 200
    else:
        link = prefix + LinkSigner(SECRET.encode()).sign(credential)

    await refused(client, link, status, text, **{"Accept-Language": "it-IT,it;q=0.9,en;q=0.8"})


async def test_a_link_that_names_nobody_speaks_the_browsers_language(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    await refused(client, forged(links["doctor-1"]), 404, TEXTS["en"]["invalid"])
    await refused(
        client, forged(links["doctor-1"]), 404, IT["invalid"], **{"Accept-Language": "it"}
    )


async def test_the_pages_are_not_found_when_another_provider_runs(make_client: MakeClient) -> None:
    client = await make_client()  # fake

    await refused(client, "http://x/webrtc/call/abc.def", 404, TEXTS["en"]["invalid"])


async def test_a_websocket_from_another_sites_page_is_refused(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    path = path_of(links["doctor-1"]) + "/ws"

    with pytest.raises(WSServerHandshakeError) as refusal:
        await client.ws_connect(path, headers={"Origin": "https://evil.example"})
    own = await client.ws_connect(path, headers={"Origin": "http://127.0.0.1:3000"})

    assert refusal.value.status == 403
    assert not own.closed
    await own.close()


# -- signaling ---------------------------------------------------------------------------------


async def test_offers_answers_and_candidates_are_relayed_between_the_peers(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    doctor, joined_doctor = await open_call(client, links["doctor-1"])
    patient, joined_patient = await open_call(client, links["patient-1"])
    doctor_id, patient_id = await introduced(doctor, joined_doctor, joined_patient)

    assert joined_doctor == {
        "type": "joined",
        "self": {"id": doctor_id, "name": "Joe Smith", "isAdmin": True},
        "peers": [],
    }
    assert joined_patient["self"] == {"id": patient_id, "name": "Jane Doe", "isAdmin": False}
    await relay(patient, patient_id, doctor, doctor_id, "offer", "v=0 o")
    await relay(doctor, doctor_id, patient, patient_id, "answer", "v=0 a")
    candidate = {
        "candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd",
        "extra": "dropped",
    }
    await doctor.send_json({"type": "candidate", "to": "no-such-peer", "candidate": None})
    await doctor.send_json({"type": "candidate", "to": patient_id, "candidate": candidate})
    await doctor.send_json({"type": "candidate", "to": patient_id, "candidate": None})
    assert await patient.receive_json(timeout=5) == {
        "type": "candidate",
        "from": doctor_id,
        "candidate": {key: candidate[key] for key in list(candidate)[:4]},
    }
    assert await patient.receive_json(timeout=5) == {
        "type": "candidate",
        "from": doctor_id,
        "candidate": None,
    }

    await patient.close()
    assert await doctor.receive_json(timeout=5) == {"type": "peer-left", "id": patient_id}
    await doctor.close()


async def test_four_participants_make_a_full_mesh_and_a_fifth_is_refused(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    people = (DOCTOR, PATIENT, NURSE, RELATIVE)
    _, links = await webrtc_call(client, clock, *people)

    sockets: list[ClientWebSocketResponse] = []
    ids: list[str] = []
    for entry in people:
        ws, joined = await open_call(client, links[entry["userExternalId"]])
        assert [peer["id"] for peer in joined["peers"]] == ids  # it offers to each of them
        sockets.append(ws)
        ids.append(joined["self"]["id"])
    fifth = person("cousin-1", ["patient"], "Cy Lu")
    response = await client.post("/teleconsultation", json=teleconsultation(5, *people, fifth))

    assert response.status == 400
    assert await response.json() == error(
        400,
        "participants.number must be between 2 and 4 for this video provider; got 5.",
        path="participants.number",
    )
    assert all(not ws.closed for ws in sockets)
    for ws in sockets:
        await ws.close()


def test_a_full_room_refuses_a_fifth_connection() -> None:
    """Each participant has one seat (a second connection replaces the first), so only a
    room made with more participants than the mesh carries could fill up: it refuses."""
    users = [f"user-{n}" for n in range(5)]
    state = RoomState({user: user == "user-0" for user in users}, None, True, "none", "now")
    for n, user in enumerate(users[:4]):
        assert seat(state, Peer(f"peer-{n}", user), STARTED, 0).__class__.__name__ == "Joined"

    assert seat(state, Peer("peer-4", "user-4"), STARTED, 0) == Refused("full")
    assert list(state.peers) == ["peer-0", "peer-1", "peer-2", "peer-3"]


async def test_a_second_connection_of_a_participant_replaces_the_first(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock)
    doctor = call.pages["doctor-1"]

    new, joined_new = await open_call(call.client, call.links["patient-1"])

    assert await closing(call.pages["patient-1"]) == ([], 4002, "replaced by a newer connection")
    assert await doctor.receive_json(timeout=5) == {
        "type": "peer-left",
        "id": call.ids["patient-1"],
    }
    assert (await doctor.receive_json(timeout=5))["peer"]["id"] == joined_new["self"]["id"]
    assert [peer["name"] for peer in joined_new["peers"]] == ["Joe Smith"]
    await doctor.close()
    await new.close()


MALFORMED: list[tuple[str | bytes, str]] = [
    ("not json", "invalid JSON"),
    ("[" * 50_000, "invalid JSON"),  # nesting deep enough to raise RecursionError
    ("[1, 2]", "message must be a JSON object"),
    ('{"to": "x"}', "missing field 'type'"),
    ('{"type": "dance"}', "unknown message type"),
    ('{"type": "offer", "sdp": "v=0"}', "missing or invalid field 'to'"),
    ('{"type": "offer", "to": "x", "sdp": 5}', "missing or invalid field 'sdp'"),
    ('{"type": "offer", "to": "' + "x" * 65 + '", "sdp": "v=0"}', "field 'to' too long"),
    ('{"type": "candidate", "to": "x"}', "missing field 'candidate'"),
    (
        '{"type": "candidate", "to": "x", "candidate": {"candidate": 1}}',
        "invalid field 'candidate'",
    ),
    (
        '{"type": "candidate", "to": "x", "candidate": {"candidate": ""}}',
        "invalid field 'candidate'",
    ),
    ('{"type": "join"}', "already joined"),
    ('{"type": "end"}', "only the host can end the call"),
    ('{"type": "offer", "to": "<self>", "sdp": "v=0"}', "cannot signal yourself"),
    (b"\x00\x01", "binary messages are not supported"),
    ('{"type": "media", "audio": "off", "video": true}', "invalid media state"),
    ('{"type": "media", "audio": false}', "invalid media state"),
    ('{"type": "video-paused", "to": "x", "paused": "yes"}', "invalid field 'paused'"),
    ('{"type": "video-paused", "paused": true}', "missing or invalid field 'to'"),
    ('{"type": "video-paused", "to": "<self>", "paused": true}', "cannot signal yourself"),
]


@pytest.mark.parametrize(("frame", "reason"), MALFORMED)
async def test_a_malformed_message_closes_only_its_connection(
    make_client: MakeClient, clock: FrozenClock, frame: str | bytes, reason: str
) -> None:
    call = await in_call(make_client, clock, (DOCTOR, PATIENT, NURSE))
    doctor, patient = call.pages["doctor-1"], call.pages["patient-1"]

    if isinstance(frame, bytes):
        await patient.send_bytes(frame)
    else:
        await patient.send_str(frame.replace("<self>", call.ids["patient-1"]))

    assert await closing(patient) == ([], 1008, reason)
    assert await doctor.receive_json(timeout=5) == {
        "type": "peer-left",
        "id": call.ids["patient-1"],
    }
    nurse, joined_nurse = await open_call(call.client, call.links["nurse-1"])  # still works
    assert [peer["name"] for peer in joined_nurse["peers"]] == ["Joe Smith"]
    await doctor.close()
    await nurse.close()


async def test_an_oversized_message_closes_its_connection(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(
        make_client, clock, (DOCTOR, PATIENT, NURSE), ("doctor-1", "patient-1", "nurse-1")
    )
    doctor, patient, nurse = call.pages.values()
    limit = signaling.MAX_MESSAGE_BYTES

    await patient.send_json({"type": "offer", "to": call.ids["doctor-1"], "sdp": "a" * limit})
    await nurse.send_str("x" * (4 * limit))  # past aiohttp's own limit: refused unbuffered

    seen, code, reason = await closing(patient)
    assert (code, reason) == (1009, f"message too big (limit {limit} bytes)")
    # delivered in memory: the nurse may be gone before the patient's message is read
    assert seen in ([], [{"type": "peer-left", "id": call.ids["nurse-1"]}])
    assert (await closing(nurse))[1] == 1009
    assert not doctor.closed
    await doctor.close()


async def test_the_first_message_must_be_a_join_within_its_time(
    make_client: MakeClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    path = path_of(links["doctor-1"]) + "/ws"
    early = await client.ws_connect(path)
    await early.send_json({"type": "offer", "to": "x", "sdp": "v=0"})
    assert await closing(early) == ([], 1008, "expected 'join'")

    monkeypatch.setattr(signaling, "JOIN_TIMEOUT_SECONDS", 0.2)  # read as each socket opens
    silent = await client.ws_connect(path)
    assert await closing(silent) == ([], 1008, "join timeout")


async def test_a_flood_of_messages_closes_its_connection(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock, connected=("doctor-1",))
    ws = call.pages["doctor-1"]

    with contextlib.suppress(ConnectionError):
        for _ in range(int(messages.RATE_BURST) + 100):
            await ws.send_json({"type": "candidate", "to": "absent", "candidate": None})

    assert await closing(ws) == ([], 1008, "rate limit exceeded")


# -- the end of a call -------------------------------------------------------------------------


async def test_the_admin_ends_the_call_for_everyone(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock)

    await call.pages["doctor-1"].send_json({"type": "end"})

    ended = [{"type": "ended", "reason": "ended_by_host"}]
    for page in call.pages.values():
        assert await closing(page) == (ended, 4000, "call ended")
    await refused(call.client, call.links["patient-1"], 410, IT["ended"])
    details = await provider(call.client).describe_room(await room_of(call.client, call.room_id))
    assert (details["status"], details["endReason"], details["connected"]) == (
        "ended",
        "ended_by_host",
        [],
    )
    assert details["endedAt"] == "2030-02-22T15:30:00.000Z"


async def test_a_call_ended_for_everyone_hands_out_no_link_and_is_listed_as_ended(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock)
    await call.pages["doctor-1"].send_json({"type": "end"})
    for page in call.pages.values():
        await closing(page)

    for user in ("doctor-1", "patient-1"):
        status, body = await join(call.client, call.room_id, user)
        body.pop("details")
        assert (status, body) == (
            200,
            {
                "bandyerUserId": user,
                "accessLinkURL": None,
                "participantsBandyerCall": [
                    {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
                    {"bandyerUserId": "patient-1", "fullName": "Jane Doe"},
                ],
                "state": "ended",
            },
        )
    for query in ("", "?state=ended"):
        response = await call.client.get(
            f"/teleconsultations{query}", headers={"miauserid": "doctor-1"}
        )
        listed = await response.json()
        assert response.status == 200, listed
        assert [(item["id"], item["state"]) for item in listed["items"]] == [
            (call.room_id, "ended")
        ]
    response = await call.client.get(
        "/teleconsultations?state=room_ready", headers={"miauserid": "doctor-1"}
    )
    assert (await response.json())["items"] == []


async def test_the_calls_moments_are_recorded_and_go_out_as_events(
    make_client: MakeClient, clock: FrozenClock, aiohttp_server: Server
) -> None:
    receiver = await start_receiver(aiohttp_server, Receiver())
    call = await in_call(
        make_client, clock, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    clock.advance(minutes=5)
    await call.pages["patient-1"].close()
    assert (await call.pages["doctor-1"].receive_json(timeout=5))["type"] == "peer-left"
    clock.advance(minutes=1)

    await call.pages["doctor-1"].send_json({"type": "end"})
    await closing(call.pages["doctor-1"])

    status, body = await join(call.client, call.room_id, "doctor-1")
    assert status == 200
    assert body["details"]["attendance"] == {
        "callStartedAt": "2030-02-22T15:30:00.000Z",
        "callEndedAt": "2030-02-22T15:36:00.000Z",
        "presences": [
            {
                "bandyerUserId": "doctor-1",
                "joinedAt": "2030-02-22T15:30:00.000Z",
                "leftAt": "2030-02-22T15:36:00.000Z",  # with the end of the call
            },
            {
                "bandyerUserId": "patient-1",
                "joinedAt": "2030-02-22T15:30:00.000Z",
                "leftAt": "2030-02-22T15:35:00.000Z",
            },
        ],
        "noShow": [],
    }
    await deliver_all(call.client)
    assert receiver.types[receiver.types.index("participant.joined") :] == [
        "participant.joined",
        "participant.joined",
        "call.started",
        "participant.left",
        "call.ended",
    ]


async def test_cancelling_ends_open_calls_and_stops_the_links(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock)
    room = await room_of(call.client, call.room_id)

    response = await call.client.delete(f"/teleconsultation/{call.room_id}")

    assert response.status == 204
    ended = [{"type": "ended", "reason": "cancelled"}]
    for page in call.pages.values():
        assert await closing(page) == (ended, 4000, "call ended")
    await refused(call.client, call.links["doctor-1"], 410, IT["cancelled"])
    assert await provider(call.client).rooms.get(room) is None


async def test_shutting_down_closes_the_calls_connections(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock, connected=("doctor-1",))
    ws = call.pages["doctor-1"]

    await provider(call.client).close_connections()  # as the server begins to stop

    assert await closing(ws) == ([], 1001, "server shutting down; reconnect")


# -- presence and details ----------------------------------------------------------------------


async def test_details_say_who_is_connected_and_since_when(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, _ = await open_call(client, links["doctor-1"])
    clock.advance(seconds=20)  # within the doctor's presence time (three heartbeats)
    patient, _ = await open_call(client, links["patient-1"])
    replica = await make_client(**WEBRTC)  # one that has not described the room yet

    status, body = await join(replica, room_id, "doctor-1")

    assert status == 200
    assert body["details"] == {
        "status": "in_progress",
        "creationDate": "2030-02-22T12:00:00.000Z",
        "startedAt": "2030-02-22T15:30:20.000Z",
        "endedAt": None,
        "endReason": None,
        "connected": [
            {"userId": "doctor-1", "since": "2030-02-22T15:30:00.000Z"},
            {"userId": "patient-1", "since": "2030-02-22T15:30:20.000Z"},
        ],
        "durationInSeconds": None,
        "live": True,
        "recording": "none",
        "maxParticipants": 4,
        "attendance": {  # the provider's own events, recorded on the teleconsultation
            "callStartedAt": "2030-02-22T15:30:20.000Z",
            "callEndedAt": None,
            "presences": [
                {
                    "bandyerUserId": "doctor-1",
                    "joinedAt": "2030-02-22T15:30:00.000Z",
                    "leftAt": None,
                },
                {
                    "bandyerUserId": "patient-1",
                    "joinedAt": "2030-02-22T15:30:20.000Z",
                    "leftAt": None,
                },
            ],
            "noShow": [],
        },
    }
    assert (await doctor.receive_json(timeout=5))["type"] == "peer-joined"
    await patient.close()
    assert (await doctor.receive_json(timeout=5))["type"] == "peer-left"  # the room was written
    details = await provider(client).describe_room(await room_of(client, room_id))
    assert (details["status"], details["connected"]) == (
        "waiting",
        [{"userId": "doctor-1", "since": "2030-02-22T15:30:00.000Z"}],
    )
    await doctor.close()


async def test_a_peer_whose_heartbeat_stopped_is_dropped_and_the_others_told(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """A peer of a replica that died (left as that replica wrote it last) is gone once it
    missed three heartbeats: the next heartbeat in the room drops it."""
    client = await make_client(**WEBRTC, WEBRTC_HEARTBEAT_MS="100")
    room_id, links = await webrtc_call(client, clock, DOCTOR, PATIENT, NURSE)
    rooms = provider(client).rooms
    room = await room_of(client, room_id)
    await rooms.join(room, Peer("ghost", "nurse-1"))
    doctor, joined = await open_call(client, links["doctor-1"])
    assert joined["peers"] == [{"id": "ghost", "name": "Ann Lee", "isAdmin": False}]

    clock.advance(seconds=1)

    assert await doctor.receive_json(timeout=5) == {"type": "peer-left", "id": "ghost"}
    state = await rooms.get(room)
    assert state is not None
    assert [p.user for p in state.peers.values()] == ["doctor-1"]
    await doctor.close()


async def test_a_call_ends_once_its_links_window_closes(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    call = await in_call(make_client, clock, WEBRTC_HEARTBEAT_MS="100")

    clock.advance(hours=24)  # past the start plus WEBRTC_MAX_LIFETIME_MS

    for page in call.pages.values():
        seen, code, reason = await closing(page)  # one may see the other leave first
        assert (seen[-1], code, reason) == (
            {"type": "ended", "reason": "expired"},
            4000,
            "call ended",
        )
    room = await provider(call.client).rooms.get(await room_of(call.client, call.room_id))
    assert room is not None
    assert room.peers == {}  # each left its room


# -- secrets, logs, settings -------------------------------------------------------------------


async def test_a_generated_link_secret_is_shared_by_every_replica(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)  # another replica on the same store
    _, links = await webrtc_call(first, clock, DOCTOR, PATIENT)

    assert (await second.get(path_of(links["doctor-1"]))).status == 200
    stored = await provider(first).storage.get("link-secret")
    assert stored is not None
    assert await provider(second).storage.get("link-secret") == stored


async def test_a_configured_link_secret_signs_the_links(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC, WEBRTC_LINK_SECRET=SECRET)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    credential = path_of(links["doctor-1"]).rsplit("/", 1)[1]

    assert LinkSigner(SECRET.encode()).verify(credential) is not None
    assert await provider(client).storage.get("link-secret") is None


async def test_no_link_name_or_sdp_reaches_the_logs(
    make_client: MakeClient, clock: FrozenClock, log_lines: LogLines
) -> None:
    call = await in_call(make_client, clock, WEBRTC_LINK_SECRET=SECRET)
    client, links = call.client, call.links
    doctor, patient = call.pages["doctor-1"], call.pages["patient-1"]
    await relay(patient, call.ids["patient-1"], doctor, call.ids["doctor-1"], "offer", "v=0 body")
    await client.get(path_of(links["patient-1"]) + "/info")
    await client.get(path_of(forged(links["patient-1"])))
    await patient.send_str("not json")
    await closing(patient)
    await client.delete(f"/teleconsultation/{call.room_id}")
    await closing(doctor)

    text = log_lines.text
    assert "/webrtc/call/{credential}/ws" in text  # the request lines are there, by route
    for secret in [*(path_of(link).rsplit("/", 1)[1] for link in links.values()), SECRET]:
        assert secret[:40] not in text
    for name in ("Joe Smith", "Jane Doe", "v=0 body"):
        assert name not in text


async def test_the_check_up_reaches_the_store(make_client: MakeClient) -> None:
    client = await make_client(**WEBRTC)

    response = await client.get("/-/check-up")

    assert response.status == 200


async def test_when_the_store_is_down_a_link_gets_a_page_saying_so(
    app_client: AppClient,
) -> None:
    environ = {
        **WEBRTC,
        "STORE_URL": "mongodb://127.0.0.1:9/teleconsult",
        "MONGODB_TIMEOUT_MS": "200",
    }
    app = create_app(Settings.from_environ(environ), load_config(None), environ=environ)
    client = await app_client(app)

    await refused(client, "http://x/webrtc/call/abc.def", 503, TEXTS["en"]["connection_lost"])
    assert (await client.get("/-/check-up")).status == 503


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"WEBRTC_LINK_SECRET": "tiny-key-0002"},
            "WEBRTC_LINK_SECRET must be at least 32 characters "
            "(for example the output of `openssl rand -base64 32`).",
        ),
        (
            {"WEBRTC_TURN_URLS": "turn:turn.example.org:3478"},
            "WEBRTC_TURN_URLS needs WEBRTC_TURN_SECRET, the TURN server's static-auth-secret.",
        ),
        (
            {"WEBRTC_STUN_URLS": "stun:a.example.org, http://b.example.org"},
            "WEBRTC_STUN_URLS must be a comma-separated list of stun: or stuns: URLs; "
            "got 'http://b.example.org'.",
        ),
        (
            {"WEBRTC_PUBLIC_URL": "http://teleconsult.example.org"},
            "WEBRTC_PUBLIC_URL must be an https URL (http is accepted for a loopback host "
            "only); got 'http://teleconsult.example.org'.",
        ),
        (
            {"WEBRTC_POLL_INTERVAL_MS": "0"},
            "WEBRTC_POLL_INTERVAL_MS must be at least 10 and at most 5000; got 0.",
        ),
        (
            {"WEBRTC_LINK_GRACE_MS": "soon"},
            "WEBRTC_LINK_GRACE_MS must be a whole number; got 'soon'.",
        ),
    ],
)
async def test_a_bad_setting_stops_the_start_with_one_line(
    build_app: Callable[..., web.Application], setting: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:  # as the app is built, before it starts
        build_app(**{**WEBRTC, **setting})
    assert str(raised.value) == message


async def test_a_public_url_makes_the_links(make_client: MakeClient, clock: FrozenClock) -> None:
    client = await make_client(**WEBRTC, WEBRTC_PUBLIC_URL="https://video.example.org/tc/")
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    assert links["doctor-1"].startswith("https://video.example.org/tc/webrtc/call/")
    assert client.app[VIDEO_PROVIDER].name == "webrtc"
