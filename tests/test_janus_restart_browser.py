"""Janus restarts during a call: the reconciler makes the room again, the pages get back in
with the tokens they hold, and media flows again, with Debian's chromium in the test's
network namespace (as tests/janus_pages.py runs it).

To tell the reconciler's repair from the one a page's token request makes, the pages are
kept away from the restarted Janus (their WebSockets are routed through the test, which
closes each one until told otherwise) until the test has asked Janus that the room is back
with both tokens; no page asks teleconsult for a token from the restart on. A page that
comes back before its room does ask, and the room then comes back whole.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from playwright.async_api import Browser, Page, Request, WebSocketRoute, expect
from teleconsult_janus import JanusVideo

from teleconsult.services import SERVICES
from tests.helpers import PATIENT, FrozenClock, provider_room, teleconsultation
from tests.janus_pages import (
    DOCTOR,
    open_page,
    video_from_everyone,
)
from tests.janus_server import (
    RTP_PORTS,
    JanusServer,
    signed_token,
    videoroom,
)
from tests.test_janus import exists, real_now
from tests.test_janus_restart import (  # noqa: F401 - `served`: the fixture, found by its name
    Served,
    handed_out,
    made_again,
    page_token,
    served,
)
from tests.test_janus_revoke import allowed_in

NEW_FEED = """(old) => {
  const now = window.__call.peerIds();
  return now.length === 1 && !old.includes(now[0]);
}"""
"""The page receives a new feed (Janus gives a feed a new id when it comes back)."""
REJOINED = "(old) => window.__call.selfId !== null && window.__call.selfId !== old"


@pytest.fixture
def service(served: Served) -> str:  # noqa: F811 - the fixture imported above
    """Where the pages' browser finds the service (`namespaced_browser` trusts its origin)."""
    return served.url


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
        users = ["doctor-1", "patient-1"]
        room_id, links = await handed_out(self.service.url, body, users)
        self.held = {await page_token(link) for link in links}
        self.room = await provider_room(self.service.app, room_id)
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


@pytest.fixture
async def call(
    served: Served,  # noqa: F811 - the fixture imported above
    namespaced_browser: Browser,
    janus: JanusServer,
    clock: FrozenClock,
) -> Call:
    """Two pages in a call, kept away from Janus, which has just restarted."""
    call = Call(served, janus)
    await call.start(namespaced_browser, clock)
    await call.keep_away()
    call.restarted = True
    await janus.restart()
    return call


async def test_a_call_resumes_after_janus_restarts_in_the_room_the_reconciler_made_again(
    call: Call,
    served: Served,  # noqa: F811 - the fixture imported above
    janus: JanusServer,
) -> None:
    # A pass (the `started` event may have been first: then it finds nothing to do).
    assert await served.app[SERVICES].reconciler.repair_rooms() in (0, 1)
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
    call: Call,
    served: Served,  # noqa: F811 - the fixture imported above
    janus: JanusServer,
) -> None:
    await made_again(janus, call.room)  # by Janus's `started` event...
    video = served.app[SERVICES].video
    assert isinstance(video, JanusVideo)
    stored = await video.storage.get(f"room/{call.room}")
    assert stored is not None
    token = signed_token(janus.token_secret, int(real_now().timestamp()) + 60)
    destroy = {"request": "destroy", "room": int(call.room), "secret": stored.document["secret"]}
    assert (await videoroom(janus.http_url, token, destroy))["videoroom"] == "destroyed"
    assert not await exists(janus, call.room)  # ...and gone again: no pass runs here

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
