"""What the tests share: the request bodies, the clients' types, small calls and checks.

Fixtures live in `conftest.py`; everything else a test module needs from another is here,
typed like the code it tests.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from teleconsult_fake import FakeVideo
from yarl import URL

from teleconsult.api.hardening import HardenedRunner
from teleconsult.callpage.catalogs import BUILT_IN as BUILT_IN_CATALOGS
from teleconsult.composition import planned
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.errors import VersionConflict
from teleconsult.observability import logs
from teleconsult.observability.redaction import Redactor
from teleconsult.services import SERVICES
from teleconsult.store.base import RecordWrite, Store
from teleconsult.store.documents import to_document
from tests.fakes import livekit as fake_livekit

T = TypeVar("T")

JSON = {"Content-Type": "application/json"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
"""Debian's chromium, which the browser tests drive (Playwright never downloads one)."""
CHROMIUM_OFFLINE = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
]
"""A Chromium that calls nobody of its own accord: only the loopback pages a test opens."""
START = "2030-02-22T15:30:00.000Z"
END = "2030-02-22T16:30:00.000Z"
BEFORE_START = datetime(2030, 2, 22, 12, 0, tzinfo=UTC)
"""The tests' default "now": three and a half hours before START."""

TEST_STORE = os.environ.get("TEST_STORE", "sqlite")
"""Which store the API tests run on: `sqlite` (default), `mongomock`, or `mongodb` (a real
server at TEST_MONGODB_URL). `make test` runs the API suite on the first two."""


@dataclass
class FrozenClock:
    now: datetime = BEFORE_START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def fake_video(client: Client) -> FakeVideo:
    provider = client.app[SERVICES].video
    assert isinstance(provider, FakeVideo)
    return provider


def person(
    external_id: str, groups: Sequence[str], full_name: str, language: str | None = "it"
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "userExternalId": external_id,
        "groups": list(groups),
        "fullName": full_name,
    }
    if language is not None:
        entry["language"] = language
    return entry


DOCTOR = person("doctor-1", ["doctor"], "Joe Smith")
PATIENT = person("patient-1", ["patient"], "Jane Doe")
NURSE = person("nurse-1", ["patient"], "Ann Lee")


def teleconsultation(
    number: int, *data: dict[str, Any], start: str = START, end: str = END
) -> dict[str, Any]:
    return {
        "participants": {"number": number, "data": list(data)},
        "start_date": start,
        "end_date": end,
    }


async def create(
    client: Client, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> str:
    response = await client.post("/teleconsultation", json=body, headers=headers)
    assert response.status == 201, await response.text()
    room_id = (await response.json())["roomId"]
    assert isinstance(room_id, str)
    return room_id


async def join(client: Client, room_id: str, user: str) -> tuple[int, Any]:
    response = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
    return response.status, await response.json()


CODES = {
    400: "validation",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "idempotency_key_reused",
    429: "too_many_idempotency_keys",
    501: "not_supported",
    502: "provider_bad_answer",
    503: "provider_unavailable",
    504: "provider_timeout",
}
"""The code an error of each status has unless the test names another (409 has several: a
test names it; a store's 503 is `store_unavailable`)."""


def error(
    status: int,
    message: str,
    error: str | None = None,
    *,
    code: str | None = None,
    path: str | None = None,
    details: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The error body a test expects. A `validation` error lists its problems in `details`:
    those `message` spells as `path: problem; ...`, else one at `path` (default `body`)."""
    code = code or CODES[status]
    body: dict[str, Any] = {
        "statusCode": status,
        "error": error or PHRASES[status],
        "message": message,
        "code": code,
    }
    if code == "validation":
        body["details"] = details or problems_of(message, path)
    return body


_PROBLEM = re.compile(r"^([\w$.\[\]-]+): (.+)$", re.DOTALL)


def problems_of(message: str, path: str | None) -> list[dict[str, str]]:
    parts = [_PROBLEM.match(part) for part in message.split("; ")]
    if path is None and all(parts):
        return [{"path": part[1], "message": part[2]} for part in parts if part]
    return [{"path": path or "body", "message": message}]


PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


API_KEY = "test-api-key"


def bandyer_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "VIDEO_PROVIDER": "bandyer",
        "BANDYER_BASE_URL": base_url,
        "BANDYER_API_SECRET_KEY": API_KEY,
        "BANDYER_TIMEOUT_MS": "500",
        **extra,
    }


LIVEKIT_KEY = fake_livekit.API_KEY
LIVEKIT_SECRET = fake_livekit.API_SECRET


def livekit_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "VIDEO_PROVIDER": "livekit",
        "LIVEKIT_URL": url,
        "LIVEKIT_API_KEY": LIVEKIT_KEY,
        "LIVEKIT_API_SECRET": LIVEKIT_SECRET,
        "LIVEKIT_TIMEOUT_MS": "500",
        **extra,
    }


JITSI_DOMAIN = "meet.example.test"
JITSI_SECRET = "jitsi-app-secret-of-32-characters!"


def jitsi_env(**extra: str) -> dict[str, str]:
    return {
        "VIDEO_PROVIDER": "jitsi",
        "JITSI_DOMAIN": JITSI_DOMAIN,
        "JITSI_APP_ID": "teleconsult",
        "JITSI_APP_SECRET": JITSI_SECRET,
        **extra,
    }


async def provider_room(client: Client | web.Application, room_id: str) -> str:
    """The provider room the teleconsultation's record points to now."""
    app = client if isinstance(client, web.Application) else client.app
    record = await app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None
    return record.room.provider_room_id


async def stored_document(client: Client, room_id: str) -> dict[str, Any]:
    """The teleconsultation as the store keeps it."""
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    return to_document(record)


def redactor_of(**environ: str) -> Redactor:
    """The redactor of an app built with `environ` (on the fake video provider unless it says
    otherwise): the secrets it was given, the link markers of every installed provider."""
    env = {"VIDEO_PROVIDER": "fake", **environ}
    return planned(Settings.from_environ(env), load_config(None), env).redactor


def in_a_request_scope(
    request_id: str, work: Callable[[], T], redactor: Redactor | None = None
) -> T:
    """`work()` inside a request's log scope (of an app with `redactor`), in a context of its
    own: the scope (its `reqId`, its sensitive values) must not reach the tests after."""

    def scoped() -> T:
        logs.begin_request(request_id, redactor)
        return work()

    return contextvars.copy_context().run(scoped)


def lose_the_first_race(store: Store, monkeypatch: Any) -> list[int | None]:
    """The store's next compare-and-set write loses, as if another replica wrote first; the
    versions every write from now on expected (a pytest `MonkeyPatch` undoes it)."""
    real_replace = store.records.replace
    calls: list[int | None] = []

    async def replace(write: RecordWrite) -> bool:
        calls.append(write.expected_version)
        if len(calls) == 1:
            raise VersionConflict(write.record.id)
        return await real_replace(write)

    monkeypatch.setattr(store.records, "replace", replace)
    return calls


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


class LogLines:
    """What the service logged, as the lines it wrote (see the `log_lines` fixture)."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


Server = Callable[[web.Application], Awaitable[TestServer]]
"""pytest-aiohttp's `aiohttp_server` fixture."""


class AppServer(TestServer):
    """Our app served by the runner `teleconsult serve` uses (`HardenedRunner`): tests see
    the answers production gives, those aiohttp writes itself included."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return HardenedRunner(self.app, **kwargs)


AppClient = Callable[[web.Application], Awaitable[Client]]
"""The `app_client` fixture: a client of our app, served by an `AppServer`."""

AppServing = Callable[..., Awaitable[TestServer]]
"""The `app_server` fixture: our app served by an `AppServer` (`port=` optional)."""


async def base_url(aiohttp_server: Server, app: web.Application) -> str:
    """`app` (a vendor's fake) served in this process on loopback: its base URL."""
    return str((await aiohttp_server(app)).make_url("")).rstrip("/")


Refusal = Callable[[Mapping[str, str]], str]
"""The `serve_refusal` fixture: what `teleconsult serve` prints to stderr when it refuses to
start with these variables."""


# -- a served process -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    """A `teleconsult serve` process on `port`; its output once it has stopped."""

    port: int
    process: asyncio.subprocess.Process
    stdout: str = ""
    stderr: str = ""


@asynccontextmanager
async def served(tmp_path: Path, **environ: str) -> AsyncIterator[Served]:
    """`teleconsult serve` on a free port with a fresh SQLite file, ready; SIGTERM at the end."""
    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "STORE_URL": f"sqlite:///{tmp_path / 'served.db'}",
        **environ,
    }
    running = Served(port, await serve(env))
    # Read as it comes: a process whose pipe is full would stop at its next log line.
    output = asyncio.gather(read_all(running.process.stdout), read_all(running.process.stderr))
    try:
        await until_ready(port)
        yield running
    finally:
        if running.process.returncode is None:
            running.process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(output, timeout=20)
        await asyncio.wait_for(running.process.wait(), timeout=20)
        running.stdout, running.stderr = stdout.decode(), stderr.decode()


async def read_all(stream: asyncio.StreamReader | None) -> bytes:
    assert stream is not None
    return await stream.read()


async def serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    """`python -m teleconsult serve` in a process of its own, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "teleconsult", "serve",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def first_line(port: int, request: bytes) -> bytes:
    """Send raw bytes (a malformed request, say) and read the status line of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status_line


async def raw_get(port: int, path: str) -> str:
    """One GET on a connection of its own, the whole answer as text."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    return (await raw_answer(port, request)).decode()


async def raw_answer(port: int, request: bytes) -> bytes:
    """Send raw bytes on a connection of their own (which they must ask to close) and read
    the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def until_ready(port: int) -> None:
    for _ in range(100):
        try:
            await raw_get(port, "/-/ready")
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not start")


# -- the webrtc provider --------------------------------------------------------------------------

WEBRTC = {"VIDEO_PROVIDER": "webrtc", "WEBRTC_POLL_INTERVAL_MS": "20", "CALL_PAGE_LOBBY": "false"}
TEXTS: dict[str, dict[str, str]] = {
    language: {key: text for key, text in catalog.items() if isinstance(text, str)}
    for language, catalog in BUILT_IN_CATALOGS.items()
}
"""The call page's built-in texts by language (plural forms left out: the browser picks them)."""
"""An app on the webrtc provider whose pages' mailboxes are taken every 20 ms, with no lobby
(the tests written before it; the lobby's tests turn it on: LOBBY)."""
LOBBY = {**WEBRTC, "CALL_PAGE_LOBBY": "true"}
"""The same with the lobby on (the default)."""
STARTED = datetime(2030, 2, 22, 15, 30, tzinfo=UTC)
"""START as a time: the moment the tests' teleconsultations lock (IMMUTABLE_PERIOD_MS=0)."""


async def webrtc_call(
    client: Client, clock: FrozenClock, *people: dict[str, Any], by: str | None = None
) -> tuple[str, dict[str, str]]:
    """A teleconsultation of `people` (created by `by`, else anonymously), now locked: its id
    and each one's link, by external id."""
    creator = {"miauserid": by} if by else None
    room_id = await create(client, teleconsultation(len(people), *people), headers=creator)
    clock.now = STARTED
    links = {}
    for entry in people:
        status, body = await join(client, room_id, entry["userExternalId"])
        assert status == 200, body
        links[entry["userExternalId"]] = body["accessLinkURL"]
    return room_id, links


async def served_call_links(
    api: str, clock: FrozenClock, *people: dict[str, Any]
) -> dict[str, str]:
    """A teleconsultation of `people` made on a served app at `api`, now locked: each one's
    link, by external id (what the browser tests open)."""
    async with ClientSession(api) as session:
        created = await session.post(
            "/teleconsultation", json=teleconsultation(len(people), *people)
        )
        room_id = (await created.json())["roomId"]
        clock.now = STARTED
        links = {}
        for user in (entry["userExternalId"] for entry in people):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links[user] = (await answer.json())["accessLinkURL"]
        return links


def path_of(link: str) -> str:
    """A link's path, to open it on a test server wherever the link points."""
    return URL(link).raw_path


async def open_call(client: Client, link: str) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    """A page's WebSocket, joined: the socket and the `joined` message."""
    ws = await client.ws_connect(path_of(link) + "/ws")
    await ws.send_json({"type": "join"})
    joined = await ws.receive_json(timeout=5)
    assert joined["type"] == "joined", joined
    return ws, joined


async def closing(ws: ClientWebSocketResponse) -> tuple[list[Any], int | None, str]:
    """Read until the close: the messages before it, its code and its reason."""
    seen: list[Any] = []
    while True:
        message = await ws.receive(timeout=5)
        if message.type is WSMsgType.TEXT:
            seen.append(json.loads(message.data))
            continue
        if message.type is WSMsgType.CLOSE:  # the frame's code: the client may have lost the
            return seen, int(message.data), message.extra or ""  # socket before it replied
        assert message.type is WSMsgType.CLOSED, message
        return seen, ws.close_code, ""


async def relay(
    sender: ClientWebSocketResponse,
    sender_id: str,
    receiver: ClientWebSocketResponse,
    receiver_id: str,
    kind: str,
    sdp: str,
) -> None:
    """An offer or answer one page sends reaches the other as the server relays it: named
    by its sender, with nothing but the description (an extra field is dropped)."""
    await sender.send_json({"type": kind, "to": receiver_id, "sdp": sdp, "extra": "dropped"})
    assert await receiver.receive_json(timeout=5) == {"type": kind, "from": sender_id, "sdp": sdp}


async def introduced(
    first: ClientWebSocketResponse, joined_first: dict[str, Any], joined_second: dict[str, Any]
) -> tuple[str, str]:
    """The second page was told of the first (to offer to it), and the first of the second;
    their peer ids."""
    assert joined_second["peers"] == [joined_first["self"]]
    assert await first.receive_json(timeout=5) == {
        "type": "peer-joined",
        "peer": joined_second["self"],
    }
    return joined_first["self"]["id"], joined_second["self"]["id"]
