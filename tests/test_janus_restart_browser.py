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
from teleconsult_janus import JanusVideo

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
REJOINED = "(old) => window.__call.selfId !== null && window.__call.selfId !== old"


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


class Call:
    """Two pages in a call through Janus; the tokens they were handed, and those they ask
    for once `restarted`. `keep_away` routes the pages' new WebSockets to Janus through the
    test, which closes each one until `let_back` opens the way for that page."""

    def __init__(self, service: Served, janus: JanusServer) -> None:
        self.service, self.janus = service, janus
        self.pages: list[Page] = []
        self.held: set[str] = set()
        self.room = ""
        self.problems: list[str] = []
        self.asked_after: list[str] = []
        self.restarted = False
        self.feeds: list[list[str]] = []
        self.ways: list[asyncio.Event] = []
        self.selves: list[int] = []

    async def start(self, browser: Browser, clock: FrozenClock) -> None:
        start = clock.now + timedelta(minutes=5)
        end = start + timedelta(minutes=30)
        body = teleconsultation(2, DOCTOR, PATIENT, start=start.isoformat(), end=end.isoformat())
        async with ClientSession(self.service.url) as session:
            created = await session.post("/teleconsultation", json=body)
            assert created.status == 201
            room_id = (await created.json())["roomId"]
            links = []
            for user in ("doctor-1", "patient-1"):
                answer = await session.get(
                    f"/teleconsultation/{room_id}", headers={"miauserid": user}
                )
                links.append((await answer.json())["accessLinkURL"])
            for link in links:  # the tokens the pages get (the same each time)
                asked = await session.post(path_of(link) + "/token")
                self.held.add((await asked.json())["token"])
        record = await self.service.app[SERVICES].store.records.get(room_id)
        assert record is not None
        assert record.room is not None
        self.room = record.room.provider_room_id
        for link in links:
            _, page = await open_page(browser, link, self.problems)
            page.on("request", self._asked)
            self.pages.append(page)
            await page.locator("#join").click()
        for page in self.pages:
            await self.video_through_janus(page)

    def _asked(self, request: Request) -> None:
        if self.restarted and request.url.endswith("/token"):
            self.asked_after.append(request.url)

    async def video_through_janus(self, page: Page) -> None:
        pairs = await video_from_everyone(page, 1)
        assert [RTP_PORTS[0] <= p["remotePort"] <= RTP_PORTS[1] for p in pairs.values()] == [True]

    async def keep_away(self) -> None:
        for page in self.pages:
            way = asyncio.Event()
            self.ways.append(way)

            async def gate(ws: WebSocketRoute, way: asyncio.Event = way) -> None:
                if way.is_set():
                    ws.connect_to_server()
                else:
                    await ws.close(code=1011, reason="kept away by the test")

            await page.context.route_web_socket(lambda url: url.startswith(self.janus.ws_url), gate)
            self.feeds.append(await page.evaluate("window.__call.peerIds()"))
            self.selves.append(await page.evaluate("window.__call.selfId"))

    async def let_back(self, index: int) -> None:
        """Open the way for page `index`, and wait until it joined the room again (Janus
        gives it a new participant id)."""
        self.ways[index].set()
        page = self.pages[index]
        await page.wait_for_function(REJOINED, arg=self.selves[index], polling=100)

    async def video_again(self) -> None:
        """Each page receives a new feed (the other's, published again) with video."""
        for page, old in zip(self.pages, self.feeds, strict=True):
            await page.wait_for_function(NEW_FEED, arg=old, polling=100)
            await self.video_through_janus(page)

    async def allowed(self) -> set[str]:
        return await allowed_in(self.service.app, self.janus, self.room)

    async def close(self) -> None:
        for page in self.pages:
            await expect(page.locator("#leave")).to_be_visible()
            await page.context.close()
        assert self.problems == []


async def test_a_call_resumes_after_janus_restarts_in_the_room_the_reconciler_made_again(
    service: Served, namespaced_browser: Browser, janus: JanusServer, clock: FrozenClock
) -> None:
    call = Call(service, janus)
    await call.start(namespaced_browser, clock)
    await call.keep_away()
    call.restarted = True
    await janus.restart()

    # A pass (the `started` event may have been first: then it finds nothing to do).
    assert await service.app[SERVICES].reconciler.repair_rooms() in (0, 1)
    assert await exists(janus, call.room)  # the same id, and no page asked for a token
    assert await call.allowed() == call.held
    assert call.asked_after == []

    for index in range(len(call.pages)):
        await call.let_back(index)
    await call.video_again()
    assert call.asked_after == []  # back in with the tokens they held
    assert await call.allowed() == call.held
    await call.close()


async def test_a_page_back_before_its_room_asks_for_a_token_and_the_room_comes_back_whole(
    service: Served, namespaced_browser: Browser, janus: JanusServer, clock: FrozenClock
) -> None:
    call = Call(service, janus)
    await call.start(namespaced_browser, clock)
    await call.keep_away()
    call.restarted = True
    await janus.restart()
    for _ in range(100):  # Janus's `started` event has the room made again...
        if await exists(janus, call.room):
            break
        await asyncio.sleep(0.1)
    video = service.app[SERVICES].video
    assert isinstance(video, JanusVideo)
    stored = await video.storage.get(f"room/{call.room}")
    assert stored is not None
    secret = stored.document["secret"]
    token = signed_token(janus.token_secret, int(real_now().timestamp()) + 60)
    destroy = {"request": "destroy", "room": int(call.room), "secret": secret}
    assert (await videoroom(janus.http_url, token, destroy))["videoroom"] == "destroyed"
    assert not await exists(janus, call.room)  # ...and it is gone again: no pass runs here

    # The doctor's page comes back first: Janus refuses its token (no such room), so it asks
    # teleconsult for one, which makes the room again with everyone's tokens.
    await call.let_back(0)
    assert [url.rpartition("/")[0] for url in call.asked_after] == [call.pages[0].url.rstrip("/")]
    assert await call.allowed() == call.held
    # The patient's page then gets in with the token it held.
    await call.let_back(1)
    await call.video_again()
    assert len(call.asked_after) == 1
    await call.close()
