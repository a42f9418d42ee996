"""Janus restarts during a call: the reconciler makes the room again, the pages get back in
with the tokens they hold, and media flows again, with Debian's chromium in the test's
network namespace (as tests/test_janus_browser.py runs it).

To tell the reconciler's repair from the one a page's token request makes, the pages are
kept away from the restarted Janus (their WebSockets are routed through the test, which
closes each one until told otherwise) until the test has run a pass and asked Janus that the
room is back with both tokens; no page asks teleconsult for a token from the restart on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, Page, Request, WebSocketRoute, async_playwright, expect

from teleconsult.services import SERVICES
from tests.helpers import (
    CHROMIUM_OFFLINE,
    PATIENT,
    AppServer,
    FrozenClock,
    path_of,
    teleconsultation,
)
from tests.janus_server import (  # noqa: F401 - the fixtures, found by their names
    RTP_PORTS,
    JanusServer,
    Namespace,
    chromium_wrapper,
    events_port_fixture,
    janus_fixture,
    janus_namespace_fixture,
    signed_token,
    videoroom,
)
from tests.test_janus import CONFIG, exists, real_now
from tests.test_janus_browser import DOCTOR, open_page, video_from_everyone
from tests.test_janus_revoke import allowed_in

NEW_FEED = """(old) => {
  const now = window.__call.peerIds();
  return now.length === 1 && !old.includes(now[0]);
}"""
"""The page receives a new feed (Janus gives a feed a new id when it comes back)."""


class Served:
    def __init__(self, url: str, app: web.Application) -> None:
        self.url, self.app = url, app


@pytest.fixture
async def service(
    janus: JanusServer,
    events_port: int,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
) -> AsyncIterator[Served]:
    """The service on the host's end of the veth pair, where pages in the namespace reach it
    and Janus's event handler posts."""
    clock.now = real_now()
    address = janus.namespace.host_address
    url = f"http://{address}:{events_port}"
    app = build_app(
        CONFIG,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            JANUS_PAGE_URL=url,
            IMMUTABLE_PERIOD_MS=str(600_000),
        ),
    )
    server = AppServer(app, host=address, port=events_port)
    await server.start_server()
    yield Served(url, app)
    await server.close()


@pytest.fixture
async def namespaced_browser(
    janus_namespace: Namespace, service: Served, tmp_path: Path
) -> AsyncIterator[Browser]:
    executable = chromium_wrapper(tmp_path, janus_namespace, "/usr/bin/chromium")
    args = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--unsafely-treat-insecure-origin-as-secure={service.url}",
        *CHROMIUM_OFFLINE,
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        yield browser
        await browser.close()


async def test_a_call_resumes_after_janus_restarts_in_the_room_the_reconciler_made_again(
    service: Served, namespaced_browser: Browser, janus: JanusServer, clock: FrozenClock
) -> None:
    start = clock.now + timedelta(minutes=5)
    body = teleconsultation(
        2, DOCTOR, PATIENT, start=start.isoformat(), end=(start + timedelta(minutes=30)).isoformat()
    )
    async with ClientSession(service.url) as session:
        created = await session.post("/teleconsultation", json=body)
        assert created.status == 201
        room_id = (await created.json())["roomId"]
        links = {}
        for user in ("doctor-1", "patient-1"):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links[user] = (await answer.json())["accessLinkURL"]
        held = set()
        for user in ("doctor-1", "patient-1"):  # the tokens the pages get (the same each time)
            asked = await session.post(path_of(links[user]) + "/token")
            held.add((await asked.json())["token"])
    record = await service.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None
    room = record.room.provider_room_id

    problems: list[str] = []
    pages: list[Page] = []
    asked_after: list[str] = []
    restarted = False

    def on_request(request: Request) -> None:
        if restarted and request.url.endswith("/token"):
            asked_after.append(request.url)

    for user in ("doctor-1", "patient-1"):
        _, page = await open_page(namespaced_browser, links[user], problems)
        page.on("request", on_request)
        pages.append(page)
        await page.locator("#join").click()
    for page in pages:
        pairs = await video_from_everyone(page, 1)
        assert [RTP_PORTS[0] <= p["remotePort"] <= RTP_PORTS[1] for p in pairs.values()] == [True]

    # From now on, the pages' new WebSockets to Janus are closed until the test opens the way.
    way_open = asyncio.Event()

    async def gate(ws: WebSocketRoute) -> None:
        if way_open.is_set():
            ws.connect_to_server()
        else:
            await ws.close(code=1011, reason="kept away by the test")

    for page in pages:
        await page.context.route_web_socket(lambda url: url.startswith(janus.ws_url), gate)
    feeds = [await page.evaluate("window.__call.peerIds()") for page in pages]
    restarted = True
    await janus.restart()

    # A pass (the `started` event may have been first: then it finds nothing to do).
    assert await service.app[SERVICES].reconciler.repair_rooms() in (0, 1)
    assert await exists(janus, room)  # the same id, and no page asked for a token
    assert await allowed_in(service.app, janus, room) == held
    assert asked_after == []

    way_open.set()
    for page, old in zip(pages, feeds, strict=True):
        await page.wait_for_function(NEW_FEED, arg=old, polling=100)
        pairs = await video_from_everyone(page, 1)
        assert [RTP_PORTS[0] <= p["remotePort"] <= RTP_PORTS[1] for p in pairs.values()] == [True]
    assert asked_after == []  # back in with the tokens they held
    assert await allowed_in(service.app, janus, room) == held
    for page in pages:
        await expect(page.locator("#leave")).to_be_visible()
        await page.context.close()
    assert problems == []
