"""Webhooks, end to end: each change's events reach an in-process receiver, signed (checked with
the standardwebhooks library's own verifier), in order, at least once, through failures,
crashes and two replicas on one store."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from standardwebhooks import Webhook

from teleconsult.composition import planned
from teleconsult.configuration.service_config import parse_config
from teleconsult.configuration.settings import Settings
from teleconsult.configuration.webhooks import webhook_endpoints
from teleconsult.core.webhooks import backoff
from teleconsult.errors import ConfigurationError
from teleconsult.services import SERVICES
from teleconsult.store.base import DeliveryStatus
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    STARTED,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    Server,
    create,
    error,
    provider_room,
    teleconsultation,
)

SECRET = "whsec_" + base64.b64encode(b"a receiver's shared key, 32 B!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another endpoint's own key, 32 B").decode()
OPERATOR = {"miauserid": "operator-1", "miausergroups": "ops"}
"""A member of ADMIN_GROUPS=ops: the failed deliveries are theirs to read and retry."""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: Any
    """What `Webhook(secret).verify` returned: the signature held."""


@dataclass
class Receiver:
    """A webhook receiver in this process: it verifies each request as a receiver would,
    answers the statuses it is told to (then 204), and can hold a request."""

    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    held: asyncio.Event | None = None
    arrived: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        payload = Webhook(self.secret).verify(body, dict(request.headers))
        received = Received(dict(request.headers), body, payload)
        self.received.append(received)
        self.arrived.put_nowait(received)
        if self.held is not None:
            await self.held.wait()
        status = self.answers.pop(0) if self.answers else 204
        if 300 <= status < 400:
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(status=status)

    @property
    def types(self) -> list[str]:
        return [r.payload["type"] for r in self.received]

    @property
    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


async def start_receiver(aiohttp_server: Server, receiver: Receiver) -> Receiver:
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    elsewhere: list[bytes] = []

    async def redirected(request: web.Request) -> web.Response:
        elsewhere.append(await request.read())
        raise AssertionError("a redirect was followed")

    app.router.add_post("/elsewhere", redirected)
    server = await aiohttp_server(app)
    receiver.url = str(server.make_url("/hooks"))
    return receiver


@pytest.fixture
async def receiver(aiohttp_server: Server) -> Receiver:
    return await start_receiver(aiohttp_server, Receiver())


Hooked = Callable[..., Awaitable[Client]]


@pytest.fixture
def hooked(make_client: MakeClient, receiver: Receiver) -> Hooked:
    """An app (a replica) whose events go to `receiver`."""

    async def make(config: dict[str, Any] | None = None, **environ: str) -> Client:
        return await make_client(config, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET, **environ)

    return make


async def deliver_all(client: Client) -> None:
    """What this replica's deliverer would send now, sent."""
    while await client.app[SERVICES].deliverer.run_once():
        pass


def without_personal_data(receiver: Receiver) -> None:
    for received in receiver.received:
        text = received.body.decode()
        for name in ("Joe Smith", "Jane Doe", "Ann Lee", "fake-video/join", "http"):
            assert name not in text


async def test_every_event_type_goes_out_once_per_change_signed_and_in_order(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    client = await hooked()
    room_id = await create(client, teleconsultation(2, DOCTOR))
    await deliver_all(client)
    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)
    assert response.status == 201
    first_room = await provider_room(client, room_id)
    await deliver_all(client)
    replaced = {"participants": {"number": 2, "data": [DOCTOR, NURSE]}}
    assert (await client.patch(f"/teleconsultation/{room_id}", json=replaced)).status == 204
    second_room = await provider_room(client, room_id)
    later = {"start_date": "2030-02-22T16:30:00.000Z", "end_date": "2030-02-22T17:30:00.000Z"}
    assert (await client.patch(f"/teleconsultation/{room_id}", json=later)).status == 204
    await deliver_all(client)
    assert receiver.types == [
        "teleconsultation.created",
        "participant.added",
        "room.created",
        "teleconsultation.updated",
        "room.replaced",
        "teleconsultation.updated",
    ]

    clock.now = STARTED  # the first start: links.available moved with the dates
    await deliver_all(client)
    assert len(receiver.received) == 6
    clock.now = STARTED + timedelta(hours=1)
    await deliver_all(client)
    assert receiver.types[6:] == ["links.available"]
    assert (await client.delete(f"/teleconsultation/{room_id}")).status == 204
    await deliver_all(client)
    await deliver_all(client)  # nothing is sent twice

    assert receiver.types[7:] == ["teleconsultation.cancelled"]
    assert len(set(receiver.ids)) == 8  # one id per event
    assert receiver.ids[6] == f"evt_{room_id}_links"
    created, added, room, _, replaced_room, _, links, cancelled = (
        r.payload for r in receiver.received
    )
    assert created == {
        "type": "teleconsultation.created",
        "timestamp": "2030-02-22T12:00:00.000Z",
        "data": {
            "teleconsultationId": room_id,
            "version": 1,
            "state": "waiting_for_participants",
            "startDate": "2030-02-22T15:30:00.000Z",
            "endDate": "2030-02-22T16:30:00.000Z",
            "participantsNumber": 2,
            "participants": [
                {"userExternalId": "doctor-1", "providerUserId": "doctor-1", "level": "plus"}
            ],
            "providerRoomId": None,
            "updatedAt": "2030-02-22T12:00:00.000Z",
        },
    }
    assert added["data"]["participant"] == {
        "userExternalId": "patient-1",
        "providerUserId": "patient-1",
        "level": "basic",
    }
    assert (room["data"]["providerRoomId"], room["data"]["state"]) == (first_room, "room_ready")
    assert replaced_room["data"]["previousProviderRoomId"] == first_room
    assert replaced_room["data"]["providerRoomId"] == second_room
    assert links["timestamp"] == "2030-02-22T16:30:00.000Z"
    assert links["data"]["availableAt"] == "2030-02-22T16:30:00.000Z"
    assert (cancelled["data"]["state"], cancelled["data"]["providerRoomId"]) == (
        "cancelled",
        None,
    )
    without_personal_data(receiver)
    assert receiver.received[0].headers["webhook-id"] == f"evt_{room_id}_1_0"
    assert receiver.received[0].headers["Content-Type"] == "application/json"


async def test_a_receiver_that_fails_three_times_gets_every_event_in_order(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    client = await hooked()
    receiver.answers = [500, 503, 429]
    room_id = await create(client, teleconsultation(2, DOCTOR))
    await client.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)
    for _ in range(6):
        await deliver_all(client)
        clock.advance(hours=1)  # past any backoff (and, at last, the lock time)

    created, added, room = f"evt_{room_id}_1_0", f"evt_{room_id}_2_0", f"evt_{room_id}_2_1"
    links, no_show = f"evt_{room_id}_links", f"evt_{room_id}_no_show"
    assert receiver.ids == [created, created, created, created, added, room, links, no_show]
    assert list(dict.fromkeys(receiver.ids)) == [created, added, room, links, no_show]
    assert {r.body for r in receiver.received[:4]} == {receiver.received[0].body}  # the same
    delivered = await client.app[SERVICES].store.webhooks.get(f"default.{created}")
    assert delivered is not None
    assert (delivered.status, delivered.attempts) == (DeliveryStatus.DELIVERED, 3)


async def test_the_queue_behind_a_failing_event_waits_for_it(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    client = await hooked()
    receiver.answers = [500]
    room_id = await create(client, teleconsultation(2, DOCTOR))
    await client.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)
    await deliver_all(client)  # alone, so that the 500 is its (ids are in no creation order)
    other = await create(client, teleconsultation(2, DOCTOR))
    await deliver_all(client)
    # The first teleconsultation's first event failed: its queue waits; the other's goes.
    assert receiver.ids == [f"evt_{room_id}_1_0", f"evt_{other}_1_0"]
    clock.advance(seconds=backoff(0, lambda: 1.0).total_seconds())
    await deliver_all(client)
    assert receiver.ids[2:] == [f"evt_{room_id}_1_0", f"evt_{room_id}_2_0", f"evt_{room_id}_2_1"]


async def test_a_crash_between_the_change_and_its_delivery_loses_nothing(
    hooked: Hooked, receiver: Receiver
) -> None:
    crashed = await hooked()
    room_id = await create(crashed, teleconsultation(2, DOCTOR))
    await crashed.close()  # stopped before it delivered anything

    restarted = await hooked()
    await deliver_all(restarted)
    assert receiver.ids == [f"evt_{room_id}_1_0"]


async def test_a_replica_that_dies_mid_delivery_leaves_it_to_another_after_the_lease(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    client = await hooked()
    room_id = await create(client, teleconsultation(2, DOCTOR))
    store = client.app[SERVICES].store
    await store.webhooks.relay(10)
    [leased] = await store.webhooks.claim("dead", clock(), clock() + timedelta(seconds=35), 10)

    await deliver_all(client)
    assert receiver.received == []  # leased by the replica that died
    clock.advance(seconds=36)
    await deliver_all(client)
    assert receiver.ids == [leased.event_id] == [f"evt_{room_id}_1_0"]


async def test_two_replicas_never_both_deliver_one_event_within_its_lease(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    first, second = await hooked(), await hooked()
    room_id = await create(first, teleconsultation(2, DOCTOR))
    receiver.held = asyncio.Event()
    sending = asyncio.create_task(first.app[SERVICES].deliverer.run_once())
    await asyncio.wait_for(receiver.arrived.get(), 10)

    assert await second.app[SERVICES].deliverer.run_once() == 0  # leased by the first
    clock.advance(seconds=30)  # still within the lease (timeout + 30 s)
    assert await second.app[SERVICES].deliverer.run_once() == 0
    receiver.held.set()
    await sending
    clock.advance(minutes=5)
    await deliver_all(second)
    await deliver_all(first)
    assert receiver.ids == [f"evt_{room_id}_1_0"]


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    hooked: Hooked, receiver: Receiver
) -> None:
    client = await hooked()
    receiver.answers = [307]
    room_id = await create(client, teleconsultation(2, DOCTOR))
    await deliver_all(client)
    assert len(receiver.received) == 1  # and /elsewhere was never called
    pending = await client.app[SERVICES].store.webhooks.get(f"default.evt_{room_id}_1_0")
    assert pending is not None
    assert (pending.status, pending.attempts, pending.last_error) == (
        DeliveryStatus.PENDING,
        1,
        "HTTP 307 (redirects are not followed)",
    )


async def test_a_receiver_that_does_not_answer_in_time_is_retried(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    client = await hooked(WEBHOOK_TIMEOUT_MS="100")
    receiver.held = asyncio.Event()  # the first request never gets its answer in time
    room_id = await create(client, teleconsultation(2, DOCTOR))
    await deliver_all(client)
    pending = await client.app[SERVICES].store.webhooks.get(f"default.evt_{room_id}_1_0")
    assert pending is not None
    assert pending.last_error == "no answer within 100 ms"
    receiver.held.set()
    receiver.held = None
    clock.advance(minutes=1)
    await deliver_all(client)
    assert receiver.ids == [f"evt_{room_id}_1_0"] * 2


async def test_the_replicas_own_changes_go_out_at_once_in_the_background(
    hooked: Hooked, receiver: Receiver
) -> None:
    client = await hooked(WEBHOOK_POLL_INTERVAL_MS="3600000")  # only the wake-up can send it
    room_id = await create(client, teleconsultation(2, DOCTOR))
    received = await asyncio.wait_for(receiver.arrived.get(), 10)
    assert received.headers["webhook-id"] == f"evt_{room_id}_1_0"


async def test_endpoints_of_the_configuration_file_get_the_events_they_filter(
    hooked: Hooked, receiver: Receiver, aiohttp_server: Server, tmp_path: Path
) -> None:
    ehr = await start_receiver(aiohttp_server, Receiver(secret=OTHER_SECRET))
    secret_file = tmp_path / "ehr-secret"
    secret_file.write_text(OTHER_SECRET + "\n")
    config = {
        "privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}},
        "webhooks": [
            {
                "name": "ehr",
                "url": ehr.url,
                "events": ["teleconsultation.cancelled", "room.created"],
                "secretFile": str(secret_file),
            }
        ],
    }
    client = await hooked(config)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    assert (await client.delete(f"/teleconsultation/{room_id}")).status == 204
    await deliver_all(client)
    assert receiver.types == [
        "teleconsultation.created",
        "room.created",
        "teleconsultation.cancelled",
    ]
    assert ehr.types == ["room.created", "teleconsultation.cancelled"]
    assert ehr.ids == [receiver.ids[1], receiver.ids[2]]  # the same events, the same ids


async def test_an_event_not_accepted_within_the_max_age_fails_is_listed_and_retried(
    hooked: Hooked, receiver: Receiver, clock: FrozenClock
) -> None:
    client = await hooked(WEBHOOK_MAX_AGE_MS="60000", ADMIN_GROUPS="ops")
    receiver.answers = [500] * 50
    room_id = await create(client, teleconsultation(2, DOCTOR))
    created_at = clock()
    for _ in range(20):  # a minute of attempts, backing off: the last one at the deadline
        await deliver_all(client)
        clock.advance(seconds=10)
    attempts = len(receiver.received)
    assert 4 <= attempts <= 12
    event_id = f"evt_{room_id}_1_0"
    assert receiver.ids == [event_id] * attempts

    response = await client.get("/webhooks/failed", headers=OPERATOR)
    assert response.status == 200
    [failed] = (await response.json())["failed"]
    assert failed == {
        "id": f"default.{event_id}",
        "eventId": event_id,
        "endpoint": "default",
        "type": "teleconsultation.created",
        "teleconsultationId": room_id,
        "attempts": attempts,
        "lastError": "HTTP 500",
        "occurredAt": "2030-02-22T12:00:00.000Z",
        "failedAt": failed["failedAt"],
        "payload": receiver.received[0].payload,
    }
    assert created_at + timedelta(seconds=60) <= datetime.fromisoformat(failed["failedAt"])
    metrics = await (await client.get("/-/metrics")).text()
    assert (
        'teleconsult_webhook_deliveries_total{endpoint="default",outcome="failed"} 1.0' in metrics
    )
    assert (
        f'teleconsult_webhook_deliveries_total{{endpoint="default",outcome="retried"}} '
        f"{attempts - 1}.0"
    ) in metrics

    receiver.answers = []
    response = await client.post(f"/webhooks/failed/default.{event_id}/retry", headers=OPERATOR)
    assert response.status == 202
    await deliver_all(client)
    assert receiver.ids == [event_id] * (attempts + 1)
    failed = await client.get("/webhooks/failed", headers=OPERATOR)
    assert await failed.json() == {"failed": []}
    response = await client.post(f"/webhooks/failed/default.{event_id}/retry", headers=OPERATOR)
    assert response.status == 404
    assert await response.json() == error(
        404,
        f"No failed webhook delivery has the id 'default.{event_id}' (GET /webhooks/failed "
        "lists them; one already retried is no longer failed).",
    )


async def test_a_410_turns_the_endpoint_off_for_every_replica_until_a_retry(
    hooked: Hooked, receiver: Receiver, log_lines: LogLines
) -> None:
    first, second = await hooked(ADMIN_GROUPS="ops"), await hooked(ADMIN_GROUPS="ops")
    receiver.answers = [410]
    room_id = await create(first, teleconsultation(2, DOCTOR))
    await deliver_all(first)
    other = await create(second, teleconsultation(2, DOCTOR))
    await deliver_all(second)  # the other replica sends nothing more
    assert receiver.ids == [f"evt_{room_id}_1_0"]
    warning = next(line for line in log_lines.parsed() if "410 Gone" in line["msg"])
    assert warning["msg"] == (
        "webhook endpoint default answered 410 Gone: it is turned off for every replica, and "
        "its events fail until a retry (POST /webhooks/failed/{id}/retry) turns it on"
    )
    failed = (await (await second.get("/webhooks/failed", headers=OPERATOR)).json())["failed"]
    assert sorted(f["id"] for f in failed) == sorted(
        [f"default.evt_{room_id}_1_0", f"default.evt_{other}_1_0"]
    )
    assert {f["lastError"] for f in failed} == {"the endpoint answered 410 Gone and was turned off"}
    assert SECRET not in log_lines.text

    response = await second.post(
        f"/webhooks/failed/default.evt_{other}_1_0/retry", headers=OPERATOR
    )
    assert response.status == 202
    await deliver_all(first)
    assert receiver.ids == [f"evt_{room_id}_1_0", f"evt_{other}_1_0"]


async def test_failed_deliveries_are_for_admins(hooked: Hooked) -> None:
    """tests/test_access.py shows who else is refused, and why."""
    client = await hooked(ADMIN_GROUPS="ops")
    response = await client.get("/webhooks/failed", headers={"miausergroups": "doctor"})
    assert response.status == 403
    response = await client.post("/webhooks/failed/default.x/retry")
    assert response.status == 403
    response = await client.get("/webhooks/failed?limit=2", headers=OPERATOR)
    assert (response.status, await response.json()) == (200, {"failed": []})
    response = await client.get("/webhooks/failed?limit=0", headers=OPERATOR)
    assert response.status == 400
    assert await response.json() == error(
        400, "limit: Must be greater than or equal to 1 and less than or equal to 500."
    )


def documented_receiver() -> str:
    """The receiver the Webhooks page (docs/webhooks.md) shows."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "webhooks.md").read_text()
    section = page.split("\n## Provider events in\n", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_documented_receiver_verifies_and_takes_each_event_once(
    make_client: MakeClient,
    aiohttp_server: Server,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FrozenClock,
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    example: dict[str, Any] = {}
    exec(documented_receiver(), example)  # noqa: S102  # the page's own code
    app = web.Application()
    app.router.add_post("/hooks", example["receive"])
    server = await aiohttp_server(app)
    client = await make_client(WEBHOOK_URL=str(server.make_url("/hooks")), WEBHOOK_SECRET=SECRET)
    room_id = await create(client, teleconsultation(2, DOCTOR))
    store = client.app[SERVICES].store
    await deliver_all(client)
    assert await store.webhooks.claim("test", clock(), clock(), 1) == []  # nothing more is due
    delivered = await store.webhooks.get(f"default.evt_{room_id}_1_0")
    assert delivered is not None
    assert delivered.status is DeliveryStatus.DELIVERED
    assert capsys.readouterr().out == f"teleconsultation.created {room_id}\n"

    async with ClientSession() as session:
        body = json.dumps(delivered.payload)
        signed = Webhook(SECRET).sign(delivered.event_id, datetime.now(UTC), body)
        headers = {"webhook-id": delivered.event_id, "webhook-signature": signed}
        now = str(int(datetime.now(UTC).timestamp()))
        replayed = await session.post(
            server.make_url("/hooks"), data=body, headers={**headers, "webhook-timestamp": now}
        )
        assert replayed.status == 204  # sent again (a lease ran out mid-send): dropped
        forged = await session.post(
            server.make_url("/hooks"),
            data=body.replace("created", "cancelled"),
            headers={**headers, "webhook-timestamp": now},
        )
        assert forged.status == 401
        stale = str(int(datetime.now(UTC).timestamp()) - 600)
        old = await session.post(
            server.make_url("/hooks"),
            data=body,
            headers={
                **headers,
                "webhook-timestamp": stale,
                "webhook-signature": Webhook(SECRET).sign(
                    delivered.event_id, datetime.fromtimestamp(int(stale), UTC), body
                ),
            },
        )
        assert old.status == 401
    assert capsys.readouterr().out == ""


async def test_no_endpoint_no_event(make_client: MakeClient) -> None:
    client = await make_client()
    await create(client, teleconsultation(2, DOCTOR, PATIENT))
    assert await client.app[SERVICES].deliverer.run_once() == 0
    assert await client.app[SERVICES].store.webhooks.backlog() == (0, 0, None)


def test_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    assert backoff(0, lambda: 0.0) == timedelta(seconds=2.5)
    assert backoff(0, lambda: 1.0) == timedelta(seconds=5)
    assert backoff(3, lambda: 1.0) == timedelta(seconds=40)
    assert backoff(30, lambda: 1.0) == timedelta(hours=1)
    assert backoff(30, lambda: 0.0) == timedelta(minutes=30)


# -- configuration ------------------------------------------------------------------------------

PRIVILEGES = {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WEBHOOK_URL": "https://hooks.example.com/in"}, "WEBHOOK_URL needs WEBHOOK_SECRET, the key its events are signed with."),
        ({"WEBHOOK_URL": "http://hooks.example.com/in", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URL must be an https URL (http is accepted for a loopback host only); got 'http://hooks.example.com/in'."),
        ({"WEBHOOK_URL": "ftp://hooks.example.com/in", "WEBHOOK_SECRET": SECRET}, "WEBHOOK_URL must be an https URL; got 'ftp://hooks.example.com/in'."),
        ({"WEBHOOK_SECRET": "not-a-whsec-secret"}, "WEBHOOK_SECRET must be whsec_ followed by 24 to 64 bytes in base64 (echo whsec_$(openssl rand -base64 32))."),
        ({"WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "WEBHOOK_SECRET must be whsec_ followed by 24 to 64 bytes in base64 (echo whsec_$(openssl rand -base64 32))."),
        ({"WEBHOOK_TIMEOUT_MS": "50"}, "WEBHOOK_TIMEOUT_MS must be at least 100 and at most 60000; got 50."),
    ],
)  # fmt: skip
def test_a_bad_webhook_setting_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ(environ)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("webhooks", "environ", "message"),
    [
        ([{"name": "ehr", "url": "https://ehr.example.com/in", "events": ["room.exploded"]}], {}, "/etc/t.json: webhooks[0].events[0]: Must be one of: teleconsultation.created, teleconsultation.updated, participant.added, room.created, room.replaced, links.available, teleconsultation.cancelled, participant.joined, participant.left, call.started, call.ended, call.no_show, participant.waiting, participant.admitted, participant.declined, participant.link_revoked, participant.removed, participant.unblocked."),
        ([{"name": "EHR", "url": "https://ehr.example.com/in"}], {}, "/etc/t.json: webhooks[0].name: Use 1 to 32 lowercase letters, digits, '_' or '-'."),
        ([{"name": "ehr", "url": "http://ehr.example.com/in"}], {"WEBHOOK_SECRET": SECRET}, "the configuration file's webhooks[0].url must be an https URL (http is accepted for a loopback host only); got 'http://ehr.example.com/in'."),
        ([{"name": "ehr", "url": "https://ehr.example.com/in"}], {}, "the configuration file's webhooks[0] (ehr) needs a signing secret: set WEBHOOK_SECRET, or give the endpoint a secretFile."),
        ([{"name": "default", "url": "https://ehr.example.com/in"}], {"WEBHOOK_URL": "https://a.example.com/", "WEBHOOK_SECRET": SECRET}, "the configuration file's webhooks[0]: the name 'default' is taken by WEBHOOK_URL's endpoint; give each endpoint its own name."),
        ([{"name": "ehr", "url": "https://ehr.example.com/in", "secretFile": "/nonexistent/secret"}], {}, "Cannot read the configuration file's webhooks[0].secretFile '/nonexistent/secret': no such file or directory."),
    ],
)  # fmt: skip
def test_a_bad_webhook_endpoint_stops_the_start_with_one_line(
    webhooks: list[dict[str, Any]], environ: dict[str, str], message: str
) -> None:
    def start() -> None:
        config = parse_config({"privileges": PRIVILEGES, "webhooks": webhooks}, "/etc/t.json")
        webhook_endpoints(Settings.from_environ(environ).webhooks, config)

    with pytest.raises(ConfigurationError) as raised:
        start()
    assert str(raised.value) == message


def test_webhook_secrets_are_never_written(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(OTHER_SECRET)
    environ = {"WEBHOOK_URL": "https://hooks.example.com/in", "WEBHOOK_SECRET": SECRET}
    settings = Settings.from_environ(environ)
    config = parse_config(
        {
            "privileges": PRIVILEGES,
            "webhooks": [
                {"name": "ehr", "url": "https://ehr.example.com/", "secretFile": str(secret_file)}
            ],
        },
        "/etc/t.json",
    )
    endpoints = webhook_endpoints(settings.webhooks, config)
    assert [(e.name, e.url, e.secret) for e in endpoints] == [
        ("default", "https://hooks.example.com/in", SECRET),
        ("ehr", "https://ehr.example.com/", OTHER_SECRET),
    ]
    assert SECRET not in repr(endpoints)
    redactor = planned(settings, config, environ).redactor  # the app's, built from the same
    assert redactor.redact_secrets(f"{SECRET} {OTHER_SECRET}") == "[redacted] [redacted]"
