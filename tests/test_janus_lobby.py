"""The lobby and "end for everyone" on the janus page, through the HTTP API, against a real
Janus (`tests/janus_server.py`), on SQLite or MongoDB as the other janus tests.

A waiting page gets no Janus token (202), and Janus itself refuses the token it would get:
only an admission puts it in the room's `allowed` list. Knocks and decisions are kept in the
provider's storage, reported as webhooks and audited; ending the call destroys the room in
Janus and every later request of the links is answered as ended.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    PATIENT,
    TEXTS,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    create,
    error,
    join,
    path_of,
    provider_room,
)
from tests.janus_server import (
    JanusServer,
    signed_token,
    videoroom,
)
from tests.test_janus import CONFIG, PAGE_URL, around, exists, provider, real_now
from tests.test_webhooks import SECRET as WEBHOOK_SECRET
from tests.test_webhooks import Receiver, deliver_all, start_receiver

WAITING = {"waiting": True}
NOT_ALLOWED = {
    "videoroom": "event",
    "error_code": 433,
    "error": "Unauthorized (not in the allowed list)",
}


@pytest.fixture
async def lobby_client(
    make_client: MakeClient, janus: JanusServer, clock: FrozenClock, aiohttp_server: Server
) -> tuple[Client, Receiver]:
    """The service on the real Janus with the lobby on (the default), and a webhook receiver."""
    clock.now = real_now()
    receiver = await start_receiver(aiohttp_server, Receiver())
    client = await make_client(
        CONFIG,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            JANUS_PAGE_URL=PAGE_URL,
            UNLIMITED_TELECONSULTATION="false",
            IMMUTABLE_PERIOD_MS=str(600_000),
            WEBHOOK_URL=receiver.url,
            WEBHOOK_SECRET=WEBHOOK_SECRET,
        ),
    )
    return client, receiver


@dataclass
class Call:
    """A consultation of the doctor and the patient, its room in Janus, their page paths."""

    client: Client
    receiver: Receiver
    room_id: str
    room: str
    links: dict[str, str]

    def patient_token(self, janus: JanusServer, clock: FrozenClock) -> str:
        """The token the patient's page gets once admitted (the link's end is its `exp`)."""
        end = math.ceil((clock.now + timedelta(minutes=35 + 15)).timestamp())
        return signed_token(janus.token_secret, end, f"teleconsult.{self.room}.patient-1")


@pytest.fixture
async def call(lobby_client: tuple[Client, Receiver], clock: FrozenClock) -> Call:
    client, receiver = lobby_client
    room_id = await create(client, around(clock.now, 2, DOCTOR, PATIENT))
    return Call(
        client,
        receiver,
        room_id,
        await provider_room(client, room_id),
        await links_of(client, room_id),
    )


async def links_of(client: Client, room_id: str) -> dict[str, str]:
    """Each participant's page path."""
    found = {}
    for user in ("doctor-1", "patient-1"):
        _, body = await join(client, room_id, user)
        found[user] = path_of(body["accessLinkURL"])
    return found


async def answer(response: ClientResponse) -> tuple[int, Any]:
    return response.status, await response.json()


async def token(client: Client, link: str, body: dict[str, Any] | None = None) -> Any:
    return await answer(await client.post(link + "/token", json=body))


async def decide(client: Client, link: str, decision: str, peer: str = "patient-1") -> Any:
    response = await client.post(f"{link}/{decision}", json={"peer": peer})
    text = await response.text()
    return response.status, json.loads(text) if text else None


async def join_janus(janus: JanusServer, room: str, token: str) -> dict[str, Any]:
    body = {"request": "join", "ptype": "publisher", "room": int(room), "token": token}
    return await videoroom(janus.http_url, token, body)


def waited(clock: FrozenClock) -> dict[str, Any]:
    since = clock.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"waiting": True, "since": since, "retryAfterMs": 2000}


def ending(why: str, status: int) -> dict[str, Any]:
    """The page's JSON ending (its info, its token) in the patient's language (it)."""
    phrases = {403: "Forbidden", 410: "Gone"}
    return {
        "statusCode": status,
        "error": phrases[status],
        "message": TEXTS["it"][why],
        "reason": why,
    }


async def test_the_patient_waits_with_no_token_janus_refuses_until_the_doctor_admits_them(
    call: Call, janus: JanusServer, clock: FrozenClock
) -> None:
    client, receiver, room_id, room, links = (
        call.client, call.receiver, call.room_id, call.room, call.links
    )  # fmt: skip
    would_be = call.patient_token(janus, clock)  # Janus refuses it while they wait

    response = await client.post(links["patient-1"] + "/token")
    assert (response.status, await response.json()) == (202, waited(clock))
    assert response.headers["Retry-After"] == "2"
    assert response.headers["Cache-Control"] == "no-store"
    assert await join_janus(janus, room, would_be) == NOT_ALLOWED
    assert await token(client, links["patient-1"], WAITING) == (202, waited(clock))
    details = await provider(client).describe_room(room)
    assert details == {
        "status": "waiting",
        "connected": [],
        "waiting": [{"userId": "patient-1", "since": waited(clock)["since"]}],
    }

    # The doctor's page (plus: never waits) sees the knock, and admits them.
    status, doctor = await token(client, links["doctor-1"])
    assert status == 200
    assert (await join_janus(janus, room, doctor["token"]))["videoroom"] == "joined"
    knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert knocks == (
        200,
        {
            "waiting": [{"id": "patient-1", "name": "Jane Doe", "since": waited(clock)["since"]}],
            "retryAfterMs": 2000,
        },
    )
    assert await decide(client, links["doctor-1"], "admit") == (204, None)
    assert await answer(await client.get(links["doctor-1"] + "/lobby")) == (
        200,
        {"waiting": [], "retryAfterMs": 2000},
    )
    assert await decide(client, links["doctor-1"], "admit") == (
        404,
        error(404, "That participant is no longer waiting to be let in."),
    )

    # Their page's next poll gets the token, now in `allowed`: Janus lets them in.
    status, access = await token(client, links["patient-1"], WAITING)
    assert status == 200
    assert access["token"] == would_be
    assert (await join_janus(janus, room, would_be))["videoroom"] == "joined"
    # Remembered for the call: the page opened again goes straight in.
    assert (await token(client, links["patient-1"]))[0] == 200

    entries = (await client.app[SERVICES].audit.page(room_id, None, 10)).entries
    admitted = [e for e in entries if e.action == "participant_admitted"]
    assert [(e.actor, e.participant) for e in admitted] == [("doctor-1", "patient-1")]
    await deliver_all(client)
    events = [r.payload for r in receiver.received if r.payload["type"].startswith("participant.")]
    assert [e["type"] for e in events] == ["participant.waiting", "participant.admitted"]
    assert events[0]["data"]["participant"]["userExternalId"] == "patient-1"
    assert events[1]["data"]["participant"]["userExternalId"] == "patient-1"
    assert events[1]["data"]["by"]["userExternalId"] == "doctor-1"


async def test_a_declined_patient_is_told_kept_out_of_janus_and_may_knock_again(
    call: Call, janus: JanusServer, clock: FrozenClock
) -> None:
    client, links = call.client, call.links
    assert (await token(client, links["patient-1"]))[0] == 202

    assert await decide(client, links["doctor-1"], "decline") == (204, None)
    assert await token(client, links["patient-1"], WAITING) == (403, ending("declined", 403))
    assert await join_janus(janus, call.room, call.patient_token(janus, clock)) == NOT_ALLOWED

    entries = (await client.app[SERVICES].audit.page(call.room_id, None, 10)).entries
    declined = [e for e in entries if e.action == "participant_declined"]
    assert [(e.actor, e.participant) for e in declined] == [("doctor-1", "patient-1")]
    await deliver_all(client)
    kinds = [r.payload["type"] for r in call.receiver.received]
    assert [k for k in kinds if k.startswith("participant.")] == [
        "participant.waiting",
        "participant.declined",
    ]

    # The page opened again knocks again: listed, and not declined any more.
    clock.now += timedelta(seconds=1)
    assert await token(client, links["patient-1"]) == (202, waited(clock))
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert [k["id"] for k in knocks["waiting"]] == ["patient-1"]
    assert await token(client, links["patient-1"], WAITING) == (202, waited(clock))


async def test_a_knock_whose_page_stopped_asking_is_no_longer_listed(
    call: Call, clock: FrozenClock
) -> None:
    client, links = call.client, call.links
    knocked = waited(clock)
    assert (await token(client, links["patient-1"]))[0] == 202

    clock.now += timedelta(seconds=11)  # the page was closed: it asked nothing for 10 s
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert knocks["waiting"] == []
    assert (await decide(client, links["doctor-1"], "admit"))[0] == 404
    # Still open after all (a throttled tab): listed again, since its first knock.
    assert await token(client, links["patient-1"], WAITING) == (202, knocked)
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert [k["since"] for k in knocks["waiting"]] == [knocked["since"]]
    # Opened again long after it was closed: a new knock, from now.
    clock.now += timedelta(seconds=11)
    assert await token(client, links["patient-1"]) == (202, waited(clock))
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert [k["since"] for k in knocks["waiting"]] == [waited(clock)["since"]]


async def test_only_a_plus_participants_page_reads_the_lobby_decides_or_ends_the_call(
    call: Call,
) -> None:
    client = call.client
    patient, doctor = call.links["patient-1"], call.links["doctor-1"]
    assert (await token(client, patient))[0] == 202

    forbidden = {
        "/lobby": "Only a plus participant's page sees who waits to be let in.",
        "/admit": "Only a plus participant's page may admit or decline someone waiting.",
        "/decline": "Only a plus participant's page may admit or decline someone waiting.",
        "/end": "Only a plus participant's page may end the call for everyone.",
    }
    for route, message in forbidden.items():
        method = client.get if route == "/lobby" else client.post
        response = await method(patient + route, json=None if route == "/lobby" else {"peer": "x"})
        assert await answer(response) == (403, error(403, message)), route
    # Another site's page holding the doctor's link.
    response = await client.post(
        doctor + "/admit",
        json={"peer": "patient-1"},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert await answer(response) == (403, ending("invalid", 403))
    for body in ({}, {"peer": ""}, {"peer": "x" * 201}):
        response = await client.post(doctor + "/decline", json=body)
        assert await answer(response) == (
            400,
            error(400, 'The body must be {"peer": "<a peer id from the call>"}.'),
        )
    response = await client.post(patient + "/token", json={"waiting": "yes"})
    assert await answer(response) == (
        400,
        error(400, 'The body must be empty, or {"waiting": true} once told to wait.'),
    )
    # Nothing changed: the patient still waits.
    _, knocks = await answer(await client.get(doctor + "/lobby"))
    assert [k["id"] for k in knocks["waiting"]] == ["patient-1"]


async def test_without_the_lobby_everyone_enters_and_there_is_no_lobby_to_read(
    make_client: MakeClient, janus: JanusServer, clock: FrozenClock
) -> None:
    clock.now = real_now()
    client = await make_client(
        CONFIG,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            UNLIMITED_TELECONSULTATION="false",
            IMMUTABLE_PERIOD_MS=str(600_000),
            CALL_PAGE_LOBBY="false",
        ),
    )
    room_id = await create(client, around(clock.now, 2, DOCTOR, PATIENT))
    links = await links_of(client, room_id)
    assert (await token(client, links["patient-1"]))[0] == 200
    info = await (await client.get(links["patient-1"] + "/info")).json()
    assert "lobby" not in info
    assert await answer(await client.get(links["doctor-1"] + "/lobby")) == (
        404,
        error(404, "The lobby is off (CALL_PAGE_LOBBY=false): nobody waits to be let in."),
    )
    room = await provider_room(client, room_id)
    assert await provider(client).describe_room(room) == {"status": "waiting", "connected": []}


async def test_the_doctor_ends_the_call_for_everyone_the_room_is_gone_and_links_say_ended(
    call: Call, janus: JanusServer
) -> None:
    client, receiver, room_id, room, links = (
        call.client, call.receiver, call.room_id, call.room, call.links
    )  # fmt: skip
    info = await (await client.get(links["patient-1"] + "/info")).json()
    assert info["lobby"] == {"noticeAfterMs": 300_000}
    _, doctor = await token(client, links["doctor-1"])
    assert (await token(client, links["patient-1"]))[0] == 202

    response = await client.post(links["doctor-1"] + "/end")
    assert (response.status, await response.text()) == (204, "")
    assert not await exists(janus, room)  # every page in it was disconnected at once
    gone = await join_janus(janus, room, doctor["token"])
    assert gone["error_code"] == 426  # no such room
    # Every later request of the links: ended, as webrtc's (the waiting page's poll too).
    assert await token(client, links["patient-1"], WAITING) == (410, ending("ended", 410))
    page = await client.get(links["doctor-1"])
    assert page.status == 410
    assert TEXTS["it"]["ended"] in await page.text()
    status, body = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert (status, body["reason"]) == (410, "ended")
    assert await provider(client).describe_room(room) == {
        "status": "ended",
        "connected": [],
        "waiting": [],
    }
    # Never made again (a page coming back, the reconciler), and a retry ends it again.
    assert await provider(client).make_room(room, 2) is False
    assert not await exists(janus, room)
    response = await client.post(links["doctor-1"] + "/end")
    assert response.status == 204
    await deliver_all(client)
    kinds = [r.payload["type"] for r in receiver.received if r.payload["type"] == "call.ended"]
    assert kinds == ["call.ended"]

    # Cancelled afterwards: its documents are deleted with the room.
    assert (await client.delete(f"/teleconsultation/{room_id}")).status == 204
    assert await provider(client).storage.get(f"call/{room}") is None


async def test_a_waiting_page_that_leaves_withdraws_its_knock_at_once(
    call: Call, clock: FrozenClock
) -> None:
    client, links = call.client, call.links
    assert (await token(client, links["patient-1"]))[0] == 202
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert [k["id"] for k in knocks["waiting"]] == ["patient-1"]

    # Another site's page holding the link cannot withdraw it.
    elsewhere = {"Origin": "https://elsewhere.example"}
    refused = await client.post(links["patient-1"] + "/leave", headers=elsewhere)
    assert await answer(refused) == (403, ending("invalid", 403))
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert [k["id"] for k in knocks["waiting"]] == ["patient-1"]

    # The page's beacon (Leave, or the page closed): gone from the doctor's list at once.
    left = await client.post(links["patient-1"] + "/leave", headers={"Origin": PAGE_URL})
    assert (left.status, await left.read()) == (204, b"")
    assert left.headers["Cache-Control"] == "no-store"
    assert await answer(await client.get(links["doctor-1"] + "/lobby")) == (
        200,
        {"waiting": [], "retryAfterMs": 2000},
    )
    assert (await decide(client, links["doctor-1"], "admit"))[0] == 404
    # Again, or from a page that never waited (the doctor's): nothing to withdraw, 204.
    for link in (links["patient-1"], links["doctor-1"]):
        again = await client.post(link + "/leave")
        assert (again.status, await again.read()) == (204, b"")
    # Opened again, the page knocks anew, from now.
    clock.now += timedelta(seconds=1)
    assert await token(client, links["patient-1"]) == (202, waited(clock))
    _, knocks = await answer(await client.get(links["doctor-1"] + "/lobby"))
    assert [k["since"] for k in knocks["waiting"]] == [waited(clock)["since"]]
