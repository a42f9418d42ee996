"""Fixtures: an app on a temporary SQLite file (or MongoDB), the fake providers, a settable clock.

Helpers that are not fixtures are in `tests/helpers.py`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from mongomock_motor import AsyncMongoMockClient
from playwright.async_api import Browser, async_playwright
from pymongo import AsyncMongoClient

from teleconsult.app import create_app
from teleconsult.cli import main
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.observability import logs
from teleconsult.store import Store
from teleconsult.store.mongo import open_mongo
from tests.fakes.kaleyra import FakeKaleyra
from tests.fakes.livekit import FakeLiveKit
from tests.helpers import (
    API_KEY,
    CHROMIUM,
    CHROMIUM_OFFLINE,
    TEST_STORE,
    AppClient,
    AppServer,
    AppServing,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    Refusal,
    Server,
    base_url,
)

pytest_plugins = ["tests.janus_server", "tests.janus_pages"]
"""The real Janus's fixtures (`janus`, `janus_namespace`, `events_port`) and those of the pages
of its calls (`service`, `namespaced_browser`), for every module."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of `test_*_browser.py` modules `browser`; on a MongoDB store, keep only
    the tests whose apps or stores take it.

    Real pages and real media exercise the page and the transport, not the store (the store's
    part of a call is tested on both stores without a browser), so `make pytest-mongomock`
    deselects them (`-m "not browser"`) and they run once, on the SQLite pass. A test that
    never asks for `store_factory` (parsers, the CLI's words, the docs, each store's own
    contract module) runs the same whatever TEST_STORE says: it runs once too.
    """
    for item in items:
        if item.path.name.startswith("test_") and item.path.stem.endswith("_browser"):
            item.add_marker(pytest.mark.browser)
    if TEST_STORE == "sqlite":
        return
    takes_store = [item for item in items if "store_factory" in _fixture_names(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in takes_store])
    items[:] = takes_store


def _fixture_names(item: pytest.Item) -> list[str]:
    """Every fixture a test asks for, directly or through other fixtures."""
    return item.fixturenames if isinstance(item, pytest.Function) else []


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
        return await open_mongo(
            database,
            settings.store.teleconsultations_collection,
            settings.store.user_map_collection,
            timeout_ms=settings.store.mongodb_timeout_ms,
        )

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
        # The reconciler and the webhook deliverer run when a test calls them (RECONCILER and
        # DELIVERER .run_once), unless asked for; the video provider is the in-memory fake,
        # with its fault injection, unless asked for. Anonymous writes are allowed unless
        # asked otherwise: many API tests create, change and cancel without a caller, as the
        # original's clients did (its contract); tests/test_access.py proves the service's own
        # default (false).
        env = {
            "STORE_URL": store_url,
            "RECONCILE_INTERVAL_MS": "0",
            "WEBHOOK_POLL_INTERVAL_MS": "0",
            "VIDEO_PROVIDER": "fake",
            "ALLOW_ANONYMOUS_WRITES": "true",
            **environ,
        }
        if config is not None:
            path = tmp_path / "service-config.json"
            path.write_text(json.dumps(config))
            env["TELECONSULTATION_SERVICE_CONFIG_PATH"] = str(path)
        settings = Settings.from_environ(env)
        return create_app(
            settings,
            load_config(settings.service.config_path),
            environ=env,
            extra_plugins=plugins,
            clock=clock,
            **({"store_factory": store_factory} if store_factory else {}),
        )

    return build


@pytest.fixture
async def app_client() -> AsyncIterator[AppClient]:
    """Clients of our apps, each served as `teleconsult serve` serves it (`AppServer`);
    closed at the end."""
    clients: list[Client] = []

    async def make(app: web.Application) -> Client:
        client = TestClient(AppServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    while clients:
        await clients.pop().close()


@pytest.fixture
async def app_server() -> AsyncIterator[AppServing]:
    """Our apps served as `teleconsult serve` serves them (`AppServer`); closed at the end."""
    servers: list[TestServer] = []

    async def serve(app: web.Application, *, port: int | None = None) -> TestServer:
        server = AppServer(app, port=port)
        await server.start_server()
        servers.append(server)
        return server

    yield serve
    while servers:
        await servers.pop().close()


@pytest.fixture
def make_client(app_client: AppClient, build_app: Callable[..., web.Application]) -> MakeClient:
    async def make(
        config: Mapping[str, Any] | None = None, plugins: Sequence[object] = (), **environ: str
    ) -> Client:
        return await app_client(build_app(config, plugins, **environ))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    """Everything logged, at every level, as the service writes it (pino JSON lines)."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in logs.CHATTY_LOGGERS}
    logs.configure_logging("trace", stream)  # exactly as `teleconsult serve` with LOG_LEVEL=trace
    yield LogLines(stream)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, chatty_level in chatty.items():
        logging.getLogger(name).setLevel(chatty_level)


@pytest.fixture
def kaleyra() -> FakeKaleyra:
    return FakeKaleyra(api_key=API_KEY)


@pytest.fixture
async def kaleyra_url(aiohttp_server: Server, kaleyra: FakeKaleyra) -> str:
    return await base_url(aiohttp_server, kaleyra.app())


@pytest.fixture
def livekit() -> FakeLiveKit:
    return FakeLiveKit()


@pytest.fixture
async def livekit_url(aiohttp_server: Server, livekit: FakeLiveKit) -> str:
    return await base_url(aiohttp_server, livekit.app())


@pytest.fixture
def serve_refusal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Refusal:
    """`teleconsult serve` with the given variables, which must refuse to start (exit 2)
    before opening the store: what it printed."""

    def refusal(environ: Mapping[str, str]) -> str:
        monkeypatch.setenv("STORE_URL", f"sqlite:///{tmp_path / 'never-opened.db'}")
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        assert main(["serve"]) == 2
        return capsys.readouterr().err

    return refusal


@pytest.fixture
def chromium_args() -> list[str]:
    """The browser's flags; a module that needs more (a fake camera) overrides this fixture."""
    return CHROMIUM_OFFLINE


@pytest.fixture
def chromium() -> str:
    """Debian's chromium, at CHROMIUM (Playwright never downloads a browser here)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs it (apt-get)"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str, chromium_args: list[str]) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=chromium_args)
        yield launched
        await launched.close()


@pytest.fixture
def service_config() -> dict[str, Any] | None:
    """The service configuration of the webrtc browser tests' replicas (a module overrides it)."""
    return None
