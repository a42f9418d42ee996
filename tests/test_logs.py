"""Logs that tell the story: one line per domain event, with ids and never a name or a link;
the reason of each 4xx at debug; pino's `pid` and `hostname`; a store outage in one line."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from teleconsult.app import create_app
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.errors import ProviderError, Unavailable
from teleconsult.services import SERVICES
from teleconsult.store.mongo.connection import MongoDatabase, short_reason
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    AppClient,
    Client,
    FrozenClock,
    LogLines,
    create,
    fake_video,
    join,
    lose_the_first_race,
    person,
    provider_room,
    teleconsultation,
)

NAMES = ("Joe Smith", "Jane Doe", "Ann Lee", "Bob Ray")
SERVICE, OUTBOX = "teleconsult.core.service", "teleconsult.core.outbox"
RECONCILER = "teleconsult.core.reconciler"


def caller(user: str, request_id: str) -> dict[str, str]:
    return {"miauserid": user, "x-request-id": request_id}


def stable(line: dict[str, Any]) -> dict[str, Any]:
    """A line without what changes from run to run, once that is checked: `time`, and
    `pid` and `hostname` as pino writes them."""
    assert isinstance(line.pop("time"), int)
    assert (line.pop("pid"), line.pop("hostname")) == (os.getpid(), socket.gethostname())
    return line


def events(log_lines: LogLines) -> list[dict[str, Any]]:
    """The event lines, in order, without `time`, `pid` and `hostname`."""
    return [stable(line) for line in log_lines.parsed() if "event" in line]


def lines_of(log_lines: LogLines, logger: str) -> list[dict[str, Any]]:
    return [stable(line) for line in log_lines.parsed() if line["logger"] == logger]


def event(
    logger: str, name: str, request_id: str | None, caller_id: str | None, **fields: Any
) -> dict[str, Any]:
    """An event line as it is written."""
    line: dict[str, Any] = {"level": 30, "logger": logger}
    if request_id is not None:
        line["reqId"] = request_id
    if caller_id is not None:
        line["callerId"] = caller_id
    return {**line, **fields, "event": name, "msg": name}


async def test_each_change_is_one_event_line_with_ids_and_never_a_name_or_link(
    client: Client, clock: FrozenClock, log_lines: LogLines
) -> None:
    room_id = await create(
        client, teleconsultation(3, DOCTOR, PATIENT), headers=caller("doctor-1", "r-create")
    )
    path = f"/teleconsultation/{room_id}"
    response = await client.post(
        f"{path}/participants/data", json=NURSE, headers=caller("doctor-1", "r-add")
    )
    assert response.status == 201
    first_room = await provider_room(client, room_id)
    newcomer = person("patient-2", ["patient"], "Bob Ray")
    response = await client.patch(
        path,
        json={
            "participants": {"number": 3, "data": [DOCTOR, PATIENT, newcomer]},
            "end_date": "2030-02-22T17:00:00.000Z",
        },
        headers=caller("doctor-1", "r-patch"),
    )
    assert response.status == 204
    second_room = await provider_room(client, room_id)
    clock.advance(hours=4)
    status, body = await join(client, room_id, "patient-2")  # a link handed out: never logged
    assert status == 200
    response = await client.delete(path, headers=caller("doctor-1", "r-cancel"))
    assert response.status == 204

    ids = {"teleconsultationId": room_id}
    assert events(log_lines) == [
        event(
            SERVICE, "teleconsultation created", "r-create", "doctor-1",
            **ids, participantsNumber=3, participantsKnown=2,
        ),
        event(
            SERVICE, "participant added", "r-add", "doctor-1",
            **ids, participantId="nurse-1", participantsNumber=3, participantsKnown=3,
        ),
        event(SERVICE, "room created", "r-add", "doctor-1", **ids, providerRoomId=first_room),
        event(
            SERVICE, "teleconsultation changed", "r-patch", "doctor-1",
            **ids, changed=["participants", "end_date"],
        ),
        event(
            SERVICE, "room replaced", "r-patch", "doctor-1",
            **ids, providerRoomId=second_room, previousProviderRoomId=first_room,
        ),
        event(
            OUTBOX, "room deleted", "r-patch", "doctor-1",
            **ids, providerRoomId=first_room, reason="replaced", attempt=1,
        ),
        event(
            SERVICE, "teleconsultation cancelled", "r-cancel", "doctor-1",
            **ids, providerRoomId=second_room,
        ),
        event(
            OUTBOX, "room deleted", "r-cancel", "doctor-1",
            **ids, providerRoomId=second_room, reason="cancelled", attempt=1,
        ),
    ]  # fmt: skip
    assert [name for name in NAMES if name in log_lines.text] == []
    assert body["accessLinkURL"] not in log_lines.text
    assert "/fake-video/join/" not in log_lines.text


async def test_the_request_line_names_the_caller_once_known(
    client: Client, log_lines: LogLines
) -> None:
    await create(client, teleconsultation(2, DOCTOR, PATIENT), headers=caller("doctor-1", "r-1"))
    await client.get("/-/healthz", headers={"x-request-id": "r-2"})  # nobody says who calls

    completed = [stable(line) for line in log_lines.parsed() if line["msg"] == "request completed"]
    assert [(line["reqId"], line.get("callerId"), line["level"]) for line in completed] == [
        ("r-1", "doctor-1", 30),
        ("r-2", None, 20),
    ]


async def test_a_change_that_lost_a_race_is_announced_once(
    client: Client, log_lines: LogLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compare-and-set loop redoes the work; the lines say what was written, once."""
    room_id = await create(client, teleconsultation(2, DOCTOR), headers=caller("d", "r-1"))
    calls = lose_the_first_race(client.app[SERVICES].store, monkeypatch)
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data", json=PATIENT, headers=caller("d", "r-2")
    )
    assert response.status == 201
    assert calls == [1, 1]
    assert fake_video(client).created_room_count == 2

    room = await provider_room(client, room_id)
    assert [(line["msg"], line.get("providerRoomId")) for line in events(log_lines)] == [
        ("teleconsultation created", None),
        ("participant added", None),
        ("room created", room),
    ]
    [discarded] = [
        line
        for line in lines_of(log_lines, OUTBOX)
        if line["msg"] == "room deleted" and line["reason"] == "lost_race"
    ]
    assert discarded["level"] == 20  # a room no record ever pointed to: at debug
    assert discarded["providerRoomId"] != room


async def test_the_reconciler_s_repairs_are_event_lines(
    client: Client,
    clock: FrozenClock,
    log_lines: LogLines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    video = fake_video(client)
    reconciler = client.app[SERVICES].reconciler
    store = client.app[SERVICES].store
    # A deletion that failed on cancel, retried by the reconciler.
    cancelled = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    cancelled_room = await provider_room(client, cancelled)

    async def unreachable(provider_room_id: str) -> None:
        raise ProviderError("fake", "delete a room", "unreachable", "injected")

    monkeypatch.setattr(video, "delete_room", unreachable)
    assert (await client.delete(f"/teleconsultation/{cancelled}")).status == 204
    monkeypatch.undo()
    # A room whose write failed: nobody tried to delete it.
    orphaned = await create(client, teleconsultation(2, DOCTOR))

    async def store_down(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("The SQLite store failed: disk I/O error.")

    monkeypatch.setattr(store.records, "replace", store_down)
    response = await client.post(f"/teleconsultation/{orphaned}/participants/data", json=PATIENT)
    assert response.status == 503
    monkeypatch.undo()
    orphan_room = next(room for room in video.rooms if room != cancelled_room)
    # An idempotency key that expires.
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(3, DOCTOR),
        headers={"Idempotency-Key": "k-1"},
    )
    assert response.status == 201
    log_lines.stream.truncate(0)
    log_lines.stream.seek(0)

    clock.advance(days=2)
    assert await reconciler.run_once() == 2
    assert await reconciler.purge_expired_keys() == 1
    assert await reconciler.purge_expired_keys() == 0  # nothing purged: nothing said

    assert video.rooms == {}
    assert sorted(events(log_lines), key=lambda line: line.get("providerRoomId", "")) == sorted(
        [
            event(
                OUTBOX, "room deleted", None, None,
                teleconsultationId=cancelled, providerRoomId=cancelled_room,
                reason="retry", attempt=2,
            ),
            event(
                OUTBOX, "room deleted", None, None,
                teleconsultationId=orphaned, providerRoomId=orphan_room,
                reason="orphan", attempt=1,
            ),
            event(RECONCILER, "expired idempotency keys purged", None, None, count=1),
        ],
        key=lambda line: line.get("providerRoomId", ""),
    )  # fmt: skip


async def test_the_reason_of_a_refusal_is_logged_at_debug(
    client: Client, log_lines: LogLines
) -> None:
    stranger = person("patient-9", ["nobody"], "Jane Doe")
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, stranger),
        headers=caller("doctor-1", "r-1"),
    )
    assert response.status == 400
    response = await client.get(
        "/teleconsultation/0123456789abcdef01234567", headers=caller("someone", "r-2")
    )
    assert response.status == 404
    response = await client.post("/teleconsultation", json=[], headers={"x-request-id": "r-3"})
    assert response.status == 400

    refused = [
        stable(line) for line in log_lines.parsed() if line["msg"].startswith("request refused")
    ]
    assert refused == [
        {
            "level": 20,
            "logger": "teleconsult.api.errors",
            "reqId": "r-1",
            "callerId": "doctor-1",
            "statusCode": 400,
            "code": "validation",
            "msg": "request refused: Participant 'patient-9' belongs to none of the configured "
            "groups (doctor, patient); got ['nobody'].",
        },
        {
            "level": 20,
            "logger": "teleconsult.api.errors",
            "reqId": "r-2",
            "callerId": "someone",
            "statusCode": 404,
            "code": "not_found",
            "msg": "request refused: No teleconsultation has the id '0123456789abcdef01234567': "
            "it never existed or was deleted.",
        },
        {
            "level": 20,
            "logger": "teleconsult.api.errors",
            "reqId": "r-3",
            "statusCode": 400,
            "code": "validation",
            "msg": "request refused: The body must be a JSON object.",
        },
    ]
    assert "Jane Doe" not in log_lines.text


async def test_an_unreachable_mongodb_is_one_short_line_not_one_per_call(
    app_client: AppClient, log_lines: LogLines
) -> None:
    environ = {"STORE_URL": "mongodb://127.0.0.1:9/teleconsult", "MONGODB_TIMEOUT_MS": "200"}
    app = create_app(Settings.from_environ(environ), load_config(None), environ=environ)
    client = await app_client(app)

    body = teleconsultation(2, DOCTOR, PATIENT)
    for _ in range(2):
        response = await client.post("/teleconsultation", json=body, headers={"miauserid": "d"})
        assert response.status == 503
        assert (await client.get("/-/ready")).status == 503

    store_lines = lines_of(log_lines, "teleconsult.store.mongo.connection")
    assert [line["level"] for line in store_lines] == [40] + [20] * (len(store_lines) - 1)
    assert len(store_lines) >= 3  # the start's index creation, then each ping (the POSTs are
    # refused without reaching for the server)
    warning = store_lines[0]
    assert warning["store"] == "mongodb"
    assert warning["msg"].startswith("store unreachable: 127.0.0.1:9: ")
    assert len(warning["msg"]) < 120, warning["msg"]
    probe_lines = lines_of(log_lines, "teleconsult.api.health")
    assert [(line["level"], line["msg"]) for line in probe_lines] == [
        (
            40,
            "not ready: The MongoDB store cannot be reached (ServerSelectionTimeoutError); "
            "retry later.",
        ),
        (
            20,
            "not ready: The MongoDB store cannot be reached (ServerSelectionTimeoutError); "
            "retry later.",
        ),
    ]
    assert "Topology" not in log_lines.text
    assert "configured timeouts" not in log_lines.text


class FlakyCollection:
    """A collection whose server is down while `down` says so."""

    def __init__(self) -> None:
        self.down = True

    async def find_one(self, query: dict[str, Any]) -> None:
        if self.down:
            raise ServerSelectionTimeoutError(
                "db.internal:27017: [Errno 111] Connection refused (configured timeouts: "
                "socketTimeoutMS: 200.0ms, connectTimeoutMS: 200.0ms), Timeout: 0.2s, "
                "Topology Description: <TopologyDescription id: 1, servers: [...]>"
            )


async def test_an_outage_is_logged_when_it_starts_and_when_it_ends(log_lines: LogLines) -> None:
    collection = FlakyCollection()
    connection = MongoDatabase({"teleconsult_outbox": collection})
    for _ in range(3):
        with pytest.raises(Unavailable):
            await connection.ping()
    collection.down = False
    await connection.ping()
    await connection.ping()

    assert [(line["level"], line["msg"]) for line in log_lines.parsed()] == [
        (40, "store unreachable: db.internal:27017: Connection refused"),
        (20, "store unreachable: db.internal:27017: Connection refused"),
        (20, "store unreachable: db.internal:27017: Connection refused"),
        (30, "store reachable again"),
    ]


def test_a_driver_error_is_cut_to_what_an_operator_needs() -> None:
    two_servers = ServerSelectionTimeoutError(
        "b.test:27018: [Errno -2] Name or service not known (configured timeouts: "
        "socketTimeoutMS: 20000.0ms, connectTimeoutMS: 20000.0ms),a.test:27017: [Errno -2] "
        "Name or service not known (configured timeouts: socketTimeoutMS: 20000.0ms, "
        "connectTimeoutMS: 20000.0ms), Timeout: 0.3s, Topology Description: <...>"
    )
    assert short_reason(two_servers) == (
        "b.test:27018: Name or service not known; a.test:27017: Name or service not known"
    )
    refused = OperationFailure("Authentication failed.", 18, {"errmsg": "Authentication failed."})
    assert short_reason(refused) == "Authentication failed."
    assert short_reason(ServerSelectionTimeoutError("x" * 500)) == "x" * 300 + "..."
    assert short_reason(ServerSelectionTimeoutError("")) == "ServerSelectionTimeoutError"


async def test_every_line_has_pid_and_hostname_as_pino_writes_them(
    client: Client, log_lines: LogLines
) -> None:
    await client.get("/-/healthz")
    [line] = [line for line in log_lines.parsed() if line["logger"] == "teleconsult.http"]
    assert list(line)[:4] == ["level", "time", "pid", "hostname"]
    assert list(line)[-1] == "msg"
    assert (line["pid"], line["hostname"]) == (os.getpid(), socket.gethostname())
