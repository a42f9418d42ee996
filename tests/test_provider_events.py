"""Provider events in: the provider's own signed webhooks change the record and go out as
webhook events; forged, unsigned and replayed ones are 401 and change nothing.

Kaleyra's are signed by the fake Kaleyra (`signed_event`), LiveKit's as the `livekit-api`
SDK signs them (a JWT carrying the body's SHA-256); the `webrtc` provider's come from its own
pages (tests/test_webrtc.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from livekit import api as livekit_api

from teleconsult.services import SERVICES
from tests.fakes.kaleyra import FakeKaleyra
from tests.helpers import (
    DOCTOR,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    PATIENT,
    STARTED,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    Server,
    bandyer_env,
    create,
    error,
    join,
    livekit_env,
    provider_room,
    teleconsultation,
)
from tests.test_webhooks import SECRET, Receiver, deliver_all, start_receiver

CONFIG = {"privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}}}
KALEYRA_EVENTS = "/providers/bandyer/events"


@pytest.fixture
async def events_receiver(aiohttp_server: Server) -> Receiver:
    return await start_receiver(aiohttp_server, Receiver())


@pytest.fixture
async def bandyer(make_client: MakeClient, kaleyra_url: str, events_receiver: Receiver) -> Client:
    return await make_client(
        CONFIG,
        **bandyer_env(kaleyra_url, WEBHOOK_URL=events_receiver.url, WEBHOOK_SECRET=SECRET),
    )


async def post_kaleyra(
    client: Client,
    kaleyra: FakeKaleyra,
    event: str,
    data: dict[str, Any],
    at: datetime,
    signed_at: datetime | None = None,
) -> tuple[int, Any]:
    headers, body = kaleyra.signed_event(event, data, at, signed_at)
    response = await client.post(KALEYRA_EVENTS, data=body, headers=headers)
    return response.status, await response.json()


async def ready_room(client: Client) -> tuple[str, str]:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    return room_id, await provider_room(client, room_id)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_signed_kaleyra_events_change_the_record_and_go_out(
    bandyer: Client, kaleyra: FakeKaleyra, events_receiver: Receiver, clock: FrozenClock
) -> None:
    room_id, room = await ready_room(bandyer)
    clock.now = STARTED
    joined, left = STARTED + timedelta(seconds=5), STARTED + timedelta(minutes=20)
    doctor = {"room_id": room, "user_id": "doctor-1"}

    assert await post_kaleyra(bandyer, kaleyra, "on_participant_joined", doctor, joined) == (
        200,
        {"received": 1, "recorded": 1},
    )
    assert await post_kaleyra(bandyer, kaleyra, "on_call_started", {"room_id": room}, joined) == (
        200,
        {"received": 1, "recorded": 1},
    )
    # Kaleyra retries until it gets a 200: a repeat changes nothing, and is not announced.
    assert await post_kaleyra(bandyer, kaleyra, "on_participant_joined", doctor, joined) == (
        200,
        {"received": 1, "recorded": 0},
    )
    # An event the core has no use for is accepted.
    assert await post_kaleyra(bandyer, kaleyra, "on_room_deleted", {"room_id": room}, joined) == (
        200,
        {"received": 0, "recorded": 0},
    )
    clock.now = left
    assert await post_kaleyra(bandyer, kaleyra, "on_participant_left", doctor, left) == (
        200,
        {"received": 1, "recorded": 1},
    )
    assert await post_kaleyra(bandyer, kaleyra, "on_call_ended", {"room_id": room}, left) == (
        200,
        {"received": 1, "recorded": 1},
    )

    status, body = await join(bandyer, room_id, "doctor-1")
    assert status == 200
    assert (body["accessLinkURL"], body["state"]) == (None, "ended")  # no link to a past call
    assert body["details"]["attendance"] == {
        "callStartedAt": iso(joined),
        "callEndedAt": iso(left),
        "presences": [{"bandyerUserId": "doctor-1", "joinedAt": iso(joined), "leftAt": iso(left)}],
        "noShow": ["patient-1"],  # not joined by the start plus ten minutes
    }

    await deliver_all(bandyer)
    assert events_receiver.types == [
        "teleconsultation.created",
        "room.created",
        "links.available",
        "participant.joined",
        "call.started",
        "call.no_show",
        "participant.left",
        "call.ended",
    ]
    by_type = {r.payload["type"]: r.payload["data"] for r in events_receiver.received}
    assert by_type["participant.joined"]["participant"] == {
        "userExternalId": "doctor-1",
        "providerUserId": "doctor-1",
        "level": "plus",
    }
    assert by_type["participant.joined"]["at"] == iso(joined)
    assert by_type["call.no_show"]["absent"] == [
        {"userExternalId": "patient-1", "providerUserId": "patient-1", "level": "basic"}
    ]
    assert by_type["call.no_show"]["noShowAt"] == iso(STARTED + timedelta(minutes=10))
    assert "Joe Smith" not in str([r.body for r in events_receiver.received])


async def test_everyone_joining_in_time_withdraws_the_no_show(
    bandyer: Client, kaleyra: FakeKaleyra, events_receiver: Receiver, clock: FrozenClock
) -> None:
    room_id, room = await ready_room(bandyer)
    clock.now = STARTED
    for user in ("doctor-1", "patient-1"):
        await post_kaleyra(
            bandyer, kaleyra, "on_participant_joined", {"room_id": room, "user_id": user}, STARTED
        )
    clock.advance(hours=1)
    await deliver_all(bandyer)
    assert "call.no_show" not in events_receiver.types
    assert (await join(bandyer, room_id, "patient-1"))[1]["details"]["attendance"]["noShow"] == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unsigned", "A Kaleyra event must carry the bandyer-signature header."),
        ("forged", "The Kaleyra event's signature does not match its body."),
        ("tampered", "The Kaleyra event's signature does not match its body."),
        ("malformed", "The bandyer-signature header must read t=<timestamp>,v0=<hex>."),
        (
            "replayed",
            "The Kaleyra event was signed at 2030-02-22T15:24:00+00:00, more than 5 minutes "
            "from now: refused as a replay.",
        ),
    ],
)
async def test_unsigned_forged_and_replayed_kaleyra_events_are_401_and_change_nothing(
    bandyer: Client,
    kaleyra: FakeKaleyra,
    events_receiver: Receiver,
    clock: FrozenClock,
    case: str,
    message: str,
) -> None:
    room_id, room = await ready_room(bandyer)
    clock.now = STARTED
    data = {"room_id": room, "user_id": "doctor-1"}
    signed_at = STARTED - timedelta(minutes=6) if case == "replayed" else None
    headers, body = kaleyra.signed_event("on_participant_joined", data, STARTED, signed_at)
    if case == "unsigned":
        del headers["bandyer-signature"]
    elif case == "forged":
        headers, body = FakeKaleyra(api_key="not-the-key").signed_event(
            "on_participant_joined", data, STARTED
        )
    elif case == "tampered":
        body = body.replace(b"doctor-1", b"patient-1")
    elif case == "malformed":
        headers["bandyer-signature"] = "v0=abc"
    before = await bandyer.app[SERVICES].store.records.get(room_id)

    response = await bandyer.post(KALEYRA_EVENTS, data=body, headers=headers)

    assert response.status == 401
    assert await response.json() == error(401, message, "Unauthorized user")
    assert await bandyer.app[SERVICES].store.records.get(room_id) == before
    await deliver_all(bandyer)
    assert "participant.joined" not in events_receiver.types


async def test_events_for_another_provider_or_a_provider_without_them(
    client: Client, bandyer: Client
) -> None:
    response = await bandyer.post("/providers/livekit/events", data=b"{}")
    assert response.status == 404
    assert await response.json() == error(
        404,
        "No video provider named 'livekit' is configured here; this service uses 'bandyer' "
        "(VIDEO_PROVIDER): post its events to /providers/bandyer/events.",
    )
    response = await client.post("/providers/fake/events", data=b"{}")
    assert response.status == 501
    assert await response.json() == error(
        501, "The fake video provider does not offer provider events."
    )


def livekit_request(
    event: dict[str, Any], secret: str = LIVEKIT_SECRET
) -> tuple[dict[str, str], bytes]:
    """A webhook as LiveKit sends it: a JWT signed with the API secret carrying the body's
    SHA-256, in `Authorization`."""
    body = json.dumps(event).encode()
    token = (
        livekit_api.AccessToken(LIVEKIT_KEY, secret)
        .with_sha256(base64.b64encode(hashlib.sha256(body).digest()).decode())
        .to_jwt()
    )
    return {"Authorization": token, "Content-Type": "application/webhook+json"}, body


async def test_livekit_events_are_verified_with_its_sdk(
    make_client: MakeClient, livekit_url: str, clock: FrozenClock
) -> None:
    client = await make_client(CONFIG, **livekit_env(livekit_url))
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    doctor = record.participants[0].provider_user_id
    clock.now = STARTED
    event = {
        "event": "participant_joined",
        "id": "EV_1",
        "createdAt": str(int(STARTED.timestamp())),
        "room": {"name": room},
        "participant": {"identity": doctor},
    }

    headers, body = livekit_request(event)
    response = await client.post("/providers/livekit/events", data=body, headers=headers)
    assert (response.status, await response.json()) == (200, {"received": 1, "recorded": 1})
    attendance = (await join(client, room_id, "doctor-1"))[1]["details"]["attendance"]
    assert attendance["presences"] == [
        {"bandyerUserId": doctor, "joinedAt": iso(STARTED), "leftAt": None}
    ]

    forged_headers, forged = livekit_request(event, secret="x" * 40)
    tampered = body.replace(b"EV_1", b"EV_2")
    replayed_event = {**event, "createdAt": str(int((STARTED - timedelta(minutes=6)).timestamp()))}
    replayed_headers, replayed = livekit_request(replayed_event)
    for sent_headers, sent in [
        ({}, body),
        (forged_headers, forged),
        (headers, tampered),
        (replayed_headers, replayed),
    ]:
        response = await client.post("/providers/livekit/events", data=sent, headers=sent_headers)
        assert response.status == 401, sent
        assert (await response.json())["code"] == "unauthorized"


async def test_a_recorded_event_is_an_event_line_with_ids_only(
    bandyer: Client, kaleyra: FakeKaleyra, clock: FrozenClock, log_lines: LogLines
) -> None:
    room_id, room = await ready_room(bandyer)
    clock.now = STARTED
    data = {"room_id": room, "user_id": "patient-1"}
    await post_kaleyra(bandyer, kaleyra, "on_participant_joined", data, STARTED)

    [line] = [line for line in log_lines.parsed() if line.get("msg") == "participant joined"]
    assert (line["teleconsultationId"], line["providerRoomId"], line["providerUserId"]) == (
        room_id,
        room,
        "patient-1",
    )
    assert "Jane Doe" not in log_lines.text
    assert "bandyer-signature" not in log_lines.text


SIGNATURE = "a" * 64
MALFORMED_SIGNATURES = [
    pytest.param("t=1,v0=é", id="non-ascii-signature"),
    pytest.param(f"t={'9' * 5000},v0={SIGNATURE}", id="huge-timestamp"),
    pytest.param(f"t=1²,v0={SIGNATURE}", id="non-ascii-digit"),
    pytest.param(f"t=\u0661\u0667,v0={SIGNATURE}", id="arabic-indic-digits"),
    pytest.param("t=1", id="no-signature"),
    pytest.param(f"v0={SIGNATURE}", id="no-timestamp"),
    pytest.param(f"t=,v0={SIGNATURE}", id="empty-timestamp"),
    pytest.param("t=1,v0=", id="empty-signature"),
    pytest.param(f"t=1,t=2,v0={SIGNATURE}", id="repeated-timestamp"),
    pytest.param(f"t=1,v0={SIGNATURE},v0={'b' * 64}", id="repeated-signature"),
    pytest.param("t=1,v0=not-hex", id="not-hex"),
    pytest.param(f"t=-1,v0={SIGNATURE}", id="negative-timestamp"),
    pytest.param(",,,=,", id="only-separators"),
]


def warnings(log_lines: LogLines) -> list[dict[str, Any]]:
    return [line for line in log_lines.parsed() if line["level"] >= 40]


@pytest.mark.parametrize("signature", MALFORMED_SIGNATURES)
async def test_a_malformed_kaleyra_signature_is_a_401_and_one_warning(
    bandyer: Client, signature: str, log_lines: LogLines
) -> None:
    """The header is read strictly: no part of it reaches int(), a date or compare_digest
    unchecked (a 500 with a traceback before), and its value is logged nowhere."""
    response = await bandyer.post(
        KALEYRA_EVENTS, data=b"{}", headers={"bandyer-signature": signature}
    )

    assert response.status == 401
    assert await response.json() == error(
        401,
        "The bandyer-signature header must read t=<timestamp>,v0=<hex>.",
        "Unauthorized user",
    )
    [warning] = warnings(log_lines)
    assert warning["level"] == 40
    assert warning["msg"] == (
        "bandyer event refused: The bandyer-signature header must read t=<timestamp>,v0=<hex>."
    )
    assert signature not in log_lines.text


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer é", id="non-ascii"),
        pytest.param("Bearer " + "9" * 5000, id="huge-number"),
        pytest.param("Bearer a.b", id="missing-part"),
        pytest.param("Bearer a.b.c.d", id="extra-part"),
        pytest.param("Bearer Bearer x.y.z", id="repeated-scheme"),
        pytest.param("Basic dXNlcjpwYXNz", id="another-scheme"),
    ],
)
async def test_a_malformed_livekit_token_is_a_401_and_one_warning(
    make_client: MakeClient, livekit_url: str, authorization: str, log_lines: LogLines
) -> None:
    client = await make_client(CONFIG, **livekit_env(livekit_url))
    message = (
        "The LiveKit event's token is not signed with the API secret, has expired, or does "
        "not carry this body's hash."
    )

    response = await client.post(
        "/providers/livekit/events", data=b"{}", headers={"Authorization": authorization}
    )

    assert response.status == 401
    assert await response.json() == error(401, message, "Unauthorized user")
    [warning] = warnings(log_lines)
    assert warning["msg"] == f"livekit event refused: {message}"
    assert authorization.removeprefix("Bearer ") not in log_lines.text


async def test_a_livekit_event_created_past_the_end_of_time_is_a_401(
    make_client: MakeClient, livekit_url: str, clock: FrozenClock, log_lines: LogLines
) -> None:
    """Even a signed event's `createdAt` may not reach a date unchecked (a 500 before)."""
    client = await make_client(CONFIG, **livekit_env(livekit_url))
    clock.now = STARTED
    headers, body = livekit_request(
        {"event": "room_started", "id": "EV_1", "createdAt": str(10**15), "room": {"name": "r"}}
    )

    response = await client.post("/providers/livekit/events", data=body, headers=headers)

    assert response.status == 401
    assert await response.json() == error(
        401,
        "The LiveKit event's createdAt is not a time within 5 minutes from now: refused as a "
        "replay.",
        "Unauthorized user",
    )
    assert len(warnings(log_lines)) == 1
