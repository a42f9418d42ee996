"""Shared fixtures: an app on a temporary SQLite file, the fake video provider, a settable clock."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient
from teleconsult_bandyer.fake_kaleyra import FakeKaleyra
from teleconsult_fake import FakeVideo

from teleconsult import keys
from teleconsult.app import create_app
from teleconsult.config import load_config
from teleconsult.settings import Settings
from teleconsult.store import Store
from teleconsult.store.mongo import MongoStore

JSON = {"Content-Type": "application/json"}
START = "2030-02-22T15:30:00.000Z"
END = "2030-02-22T16:30:00.000Z"
BEFORE_START = datetime(2030, 2, 22, 12, 0, tzinfo=UTC)
"""The tests' default "now": three and a half hours before START."""


@dataclass
class FrozenClock:
    now: datetime = BEFORE_START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`teleconsult serve` configures the root logger for the process; undo it after a test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'teleconsult.db'}"


TEST_STORE = os.environ.get("TEST_STORE", "sqlite")
"""Which store the API tests run on: `sqlite` (default), `mongomock`, or `mongodb` (a real
server at TEST_MONGODB_URL). `make test` runs the API suite on the first two."""


@pytest.fixture
async def store_factory() -> AsyncIterator[Callable[[Settings], Awaitable[Store]] | None]:
    """None for SQLite (STORE_URL decides); else one MongoDB database shared by the test's apps."""
    if TEST_STORE == "sqlite":
        yield None
        return
    if TEST_STORE == "mongomock":
        database: Any = AsyncMongoMockClient()["teleconsult"]
    elif TEST_STORE == "mongodb":
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            os.environ["TEST_MONGODB_URL"], tz_aware=True
        )
        name = f"teleconsult_test_{uuid.uuid4().hex[:12]}"
        database = client[name]
    else:
        raise ValueError(f"TEST_STORE must be sqlite, mongomock or mongodb; got {TEST_STORE!r}")

    async def factory(settings: Settings) -> Store:
        store = MongoStore(
            database, settings.teleconsultations_collection, settings.user_map_collection
        )
        await store.prepare()
        return store

    yield factory
    if TEST_STORE == "mongodb":
        await client.drop_database(name)
        await client.close()


@pytest.fixture
def build_app(
    store_url: str,
    clock: FrozenClock,
    tmp_path: Path,
    store_factory: Callable[[Settings], Awaitable[Store]] | None,
) -> Callable[..., web.Application]:
    """An app factory: environment variables as keyword arguments, `config` as a dict."""

    def build(
        config: Mapping[str, Any] | None = None,
        plugins: Sequence[object] = (),
        **environ: str,
    ) -> web.Application:
        # The reconciler runs when a test calls it (RECONCILER.run_once), unless asked for.
        env = {"STORE_URL": store_url, "RECONCILE_INTERVAL_MS": "0", **environ}
        if config is not None:
            path = tmp_path / "service-config.json"
            path.write_text(json.dumps(config))
            env["TELECONSULTATION_SERVICE_CONFIG_PATH"] = str(path)
        settings = Settings.from_environ(env)
        return create_app(
            settings,
            load_config(settings.service_config_path),
            environ=env,
            extra_plugins=plugins,
            clock=clock,
            **({"store_factory": store_factory} if store_factory else {}),
        )

    return build


@pytest.fixture
def make_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    build_app: Callable[..., web.Application],
) -> MakeClient:
    async def make(
        config: Mapping[str, Any] | None = None, plugins: Sequence[object] = (), **environ: str
    ) -> Client:
        return await aiohttp_client(build_app(config, plugins, **environ))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


def fake_video(client: Client) -> FakeVideo:
    provider = client.app[keys.VIDEO_PROVIDER]
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


def error(status: int, message: str, error: str | None = None) -> dict[str, Any]:
    phrases = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        413: "Request Entity Too Large",
        415: "Unsupported Media Type",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return {"statusCode": status, "error": error or phrases[status], "message": message}


API_KEY = "test-api-key"


@pytest.fixture
def kaleyra() -> FakeKaleyra:
    return FakeKaleyra(api_key=API_KEY)


@pytest.fixture
async def kaleyra_url(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]], kaleyra: FakeKaleyra
) -> str:
    server = await aiohttp_server(kaleyra.app())
    return str(server.make_url("")).rstrip("/")


def bandyer_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "VIDEO_PROVIDER": "bandyer",
        "BANDYER_BASE_URL": base_url,
        "BANDYER_API_SECRET_KEY": API_KEY,
        "BANDYER_TIMEOUT_MS": "500",
        **extra,
    }
