"""Calls survive a deploy: two real browsers in a call (fake camera, loopback media) while
the server restarts, or while the replica a page talks to stops behind a proxy.

The server stops as `teleconsult serve` does on SIGTERM (the app's runner cleaned up: its
WebSockets closed with 1001, "reconnect") and starts again on the same store and port. The
pages keep their peer connections: the video decoded on both keeps growing throughout
(sampled every 200 ms, no gap over a second), the peers keep their ids, and both pages are
in the call again, resumed, once signaling is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect
from teleconsult_webrtc import WebRTCVideo

from teleconsult.services import SERVICES
from tests.helpers import (
    PATIENT,
    TEXTS,
    WEBRTC,
    AppServing,
    FrozenClock,
    free_port,
    path_of,
    served_call_links,
)
from tests.test_webrtc_browser import (
    CHROMIUM_ARGS,
    CONNECTED,
    DOCTOR,
    frames_decoded,
    new_page,
)

SAMPLE_SECONDS = 0.2
MAX_GAP_SECONDS = 1.0
EN, IT = TEXTS["en"], TEXTS["it"]
OUTAGE = (
    "ERR_CONNECTION_REFUSED",
    "ERR_CONNECTION_RESET",
    "ERR_EMPTY_RESPONSE",
    "WebSocket connection to",
)
"""What the console says while the server is away (the page's tries to reconnect)."""
IN_CALL = "() => window.__call.phase === 'in-call'"
ICE_FAILS_ON_DEMAND = """
(() => {
  const pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  const real = Object.getOwnPropertyDescriptor(Native.prototype, "iceConnectionState").get;
  const ufrag = (pc, side = "local") =>
    /a=ice-ufrag:(\\S+)/.exec(pc[`${side}Description`]?.sdp || "")?.[1];
  const calls = () => pcs.filter((pc) => pc.remoteDescription && pc.connectionState !== "closed");
  window.__iceFails = () => {
    for (const pc of calls()) {
      const failedWith = ufrag(pc);
      Object.defineProperty(pc, "iceConnectionState", {
        configurable: true,
        get() { return ufrag(pc) === failedWith ? "failed" : real.call(pc); },
      });
      pc.dispatchEvent(new Event("iceconnectionstatechange"));
    }
  };
  window.__ice = () => calls().map((pc) => ({
    local: ufrag(pc), remote: ufrag(pc, "remote"), signaling: pc.signalingState,
  }));
})();
"""
"""Test-only: `__iceFails()` makes the page's call connections read ICE "failed" (as when the
network path changed) until their ICE credentials change, i.e. until an ICE restart;
`__ice()` reads each one's credentials (local and remote ufrag) and signaling state."""
RESTARTED = """([old]) => {
  const [now] = window.__ice();
  return now.local !== old.local && now.remote !== old.remote && now.signaling === "stable";
}"""
"""Both sides' ICE credentials are new, and no offer is left pending."""


@pytest.fixture
def chromium_args() -> list[str]:
    return CHROMIUM_ARGS


START_SAMPLING = """(ms) => {
  window.__frames = [];
  window.__sampler = setInterval(async () => {
    const at = performance.now();
    window.__frames.push([at / 1000, await window.__call.videoFramesDecoded()]);
  }, ms);
}"""
"""Sampled in the page, by the page's clock: what the test's own event loop does meanwhile
(starting a server) cannot stretch the intervals."""
STOP_SAMPLING = "() => { clearInterval(window.__sampler); return window.__frames; }"


@dataclass
class Frames:
    """`framesDecoded` of each page's peers, sampled every SAMPLE_SECONDS while a test runs."""

    decoder_restarts: bool = False
    """Whether the count may start over on the same peer connection: Chrome makes the
    receiving video stream anew (same SSRC) on the page that yields in crossing offers."""
    samples: list[list[tuple[float, dict[str, int]]]] = field(default_factory=list)
    """Per page: (seconds, frames decoded by peer id)."""

    def longest_gaps(self) -> list[float]:
        """For each page: the longest time its one peer's decoded video was seen not to grow,
        from sample to sample. A late sample that finds new frames ends a gap (on a loaded
        machine the page's own timer runs late, while the frames kept coming). A peer
        connection made anew (a new peer id, or, unless `decoder_restarts`, a count that
        starts over) fails it."""
        return [self._longest_gap(index, samples) for index, samples in enumerate(self.samples)]

    def _longest_gap(self, index: int, samples: list[tuple[float, dict[str, int]]]) -> float:
        peers = {tuple(counts) for _, counts in samples}
        [peer] = peers  # one peer, always the same
        assert len(peer) == 1, peers
        previous, last_count, gap, longest = samples[0][0], -1, 0.0, 0.0
        for moment, counts in samples:
            [count] = counts.values()
            went_back = count < last_count
            assert self.decoder_restarts or not went_back, f"page {index}: back to {count}"
            grew = count > last_count or (went_back and count > 0)  # frames decoded since
            gap = 0.0 if grew else gap + moment - previous
            longest = max(longest, gap)
            previous, last_count = moment, count
        return longest


@contextlib.asynccontextmanager
async def sampling(*pages: Page, decoder_restarts: bool = False) -> AsyncIterator[Frames]:
    frames = Frames(decoder_restarts)
    for page in pages:
        await page.evaluate(START_SAMPLING, SAMPLE_SECONDS * 1000)
    yield frames
    for page in pages:
        frames.samples.append([(at, counts) for at, counts in await page.evaluate(STOP_SAMPLING)])


@dataclass
class TwoPages:
    doctor: Page
    patient: Page
    contexts: list[BrowserContext]
    problems: list[str]

    @property
    def both(self) -> tuple[Page, Page]:
        return self.doctor, self.patient

    def unexpected_problems(self) -> list[str]:
        return [p for p in self.problems if not any(known in p for known in OUTAGE)]


async def in_a_call(
    browser: Browser, doctor_url: str, patient_url: str, script: str | None = None
) -> TwoPages:
    """Both pages open, joined, connected to each other and decoding video."""
    problems: list[str] = []
    doctor_context, doctor = await new_page(browser, problems)
    patient_context, patient = await new_page(browser, problems)
    for context in (doctor_context, patient_context):
        if script is not None:
            await context.add_init_script(script)
    await doctor.goto(doctor_url)
    await patient.goto(patient_url)
    await doctor.get_by_role("button", name="Join").click()
    await expect(doctor.locator("#status")).to_have_text(EN["waiting"])
    await patient.get_by_role("button", name="Entra").click()
    for page in (doctor, patient):
        await page.wait_for_function(CONNECTED, arg=1, polling=100)
        await frames_decoded(page, {})
    return TwoPages(doctor, patient, [doctor_context, patient_context], problems)


async def negotiation(pages: TwoPages) -> list[dict[str, int]]:
    return [await page.evaluate("window.__call.negotiation()") for page in pages.both]


async def back_in_the_call(pages: TwoPages, ids: list[Any]) -> None:
    """Both pages say they are in the call again, connected to the same peer as before."""
    for page, language in ((pages.doctor, EN), (pages.patient, IT)):
        await page.wait_for_function(IN_CALL, polling=100)
        await expect(page.locator("#status")).not_to_have_text(language["reconnecting"])
        await page.wait_for_function(CONNECTED, arg=1, polling=100)
        await expect(page.locator(".tile.remote .peer-state")).to_have_text("")
    assert [
        await page.evaluate("window.__call.selfId") for page in (pages.doctor, pages.patient)
    ] == ids


async def test_a_call_keeps_its_media_while_the_server_restarts(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    settings = {**WEBRTC, "WEBRTC_PUBLIC_URL": api, "WEBRTC_HEARTBEAT_MS": "200"}
    server = await app_server(build_app(None, **settings), port=port)
    links = await served_call_links(api, clock, DOCTOR, PATIENT)
    pages = await in_a_call(browser, links["doctor-1"], links["patient-1"])
    ids = [await page.evaluate("window.__call.selfId") for page in (pages.doctor, pages.patient)]

    async with sampling(pages.doctor, pages.patient) as frames:
        await asyncio.sleep(1)
        await server.close()  # as on SIGTERM: the runner's cleanup, WebSockets closed (1001)
        await expect(pages.doctor.locator("#status")).to_have_text(EN["reconnecting"])
        await expect(pages.patient.locator("#status")).to_have_text(IT["reconnecting"])
        await asyncio.sleep(1.5)  # the time a restart takes
        await app_server(build_app(None, **settings), port=port)  # same store, same port
        await back_in_the_call(pages, ids)
        await asyncio.sleep(1)

    assert max(frames.longest_gaps()) <= MAX_GAP_SECONDS, frames.longest_gaps()
    no_restart = {"iceRestarts": 0, "crossedOffers": 0, "resumed": 1}  # the path did not change
    assert await negotiation(pages) == [no_restart, no_restart]
    assert pages.unexpected_problems() == []
    for context in pages.contexts:
        await context.close()


async def test_ice_that_failed_while_signaling_was_away_restarts_once_it_is_back(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
) -> None:
    """Both pages see ICE fail during the outage: each restarts ICE as it resumes, the two
    offers cross, and the polite page yields (perfect negotiation): both end connected
    with new ICE credentials, their media never stopped."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    settings = {**WEBRTC, "WEBRTC_PUBLIC_URL": api, "WEBRTC_HEARTBEAT_MS": "200"}
    server = await app_server(build_app(None, **settings), port=port)
    links = await served_call_links(api, clock, DOCTOR, PATIENT)
    pages = await in_a_call(browser, links["doctor-1"], links["patient-1"], ICE_FAILS_ON_DEMAND)
    ids = [await page.evaluate("window.__call.selfId") for page in pages.both]
    before = [await page.evaluate("window.__ice()") for page in pages.both]

    async with sampling(*pages.both, decoder_restarts=True) as frames:
        await server.close()
        for page in pages.both:
            await page.wait_for_function("() => window.__call.phase === 'reconnecting'")
            await page.evaluate("window.__iceFails()")
        await asyncio.sleep(0.5)
        await app_server(build_app(None, **settings), port=port)
        await back_in_the_call(pages, ids)
        for page, old in zip(pages.both, before, strict=True):
            await page.wait_for_function(RESTARTED, arg=old, polling=100)
            await page.wait_for_function(CONNECTED, arg=1, polling=100)
        await asyncio.sleep(1)

    assert max(frames.longest_gaps()) <= MAX_GAP_SECONDS, frames.longest_gaps()
    counted = await negotiation(pages)
    assert [count["resumed"] for count in counted] == [1, 1]
    assert [count["iceRestarts"] >= 1 for count in counted] == [True, True]  # both offered
    assert [count["crossedOffers"] >= 1 for count in counted] == [True, True]  # and crossed
    assert pages.unexpected_problems() == []
    for context in pages.contexts:
        await context.close()


# -- two replicas behind a proxy ---------------------------------------------------------------


async def both_served_by(server: TestServer) -> None:
    """Both pages' WebSockets are on this replica (the doctor's came back to it)."""
    provider = server.app[SERVICES].video
    assert isinstance(provider, WebRTCVideo)
    for _ in range(100):
        if sum(c.joined for c in provider.connections) == 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the doctor's page did not come back through the proxy")


class Proxy:
    """A loopback TCP proxy to the first of its backends that accepts a connection, as a load
    balancer sends a new connection to a replica that is up."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Future[Any]] = set()

    async def __aenter__(self) -> Proxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        await self.server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for port in self.backends:
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            pipes = (self._pipe(reader, upstream[1]), self._pipe(upstream[0], writer))
            task = asyncio.ensure_future(asyncio.gather(*pipes))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)
            return
        writer.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()


async def test_a_page_whose_replica_stops_resumes_through_the_proxy_on_the_other(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
) -> None:
    first_port, second_port = free_port(), free_port()
    async with Proxy([first_port, second_port]) as proxy:
        api = f"http://127.0.0.1:{proxy.port}"
        settings = {**WEBRTC, "WEBRTC_PUBLIC_URL": api, "WEBRTC_HEARTBEAT_MS": "200"}
        first: TestServer = await app_server(build_app(None, **settings), port=first_port)
        second = await app_server(build_app(None, **settings), port=second_port)
        links = await served_call_links(api, clock, DOCTOR, PATIENT)
        patient_url = str(second.make_url(path_of(links["patient-1"])))  # the second, directly
        pages = await in_a_call(browser, links["doctor-1"], patient_url)  # the doctor: the first
        ids = [
            await page.evaluate("window.__call.selfId") for page in (pages.doctor, pages.patient)
        ]

        async with sampling(pages.doctor, pages.patient) as frames:
            await asyncio.sleep(1)
            await first.close()  # the doctor's replica stops; the proxy sends it to the second
            await both_served_by(second)
            await back_in_the_call(pages, ids)
            await asyncio.sleep(1)

        assert max(frames.longest_gaps()) <= MAX_GAP_SECONDS, frames.longest_gaps()
        assert await negotiation(pages) == [
            {"iceRestarts": 0, "crossedOffers": 0, "resumed": 1},  # the doctor's
            {"iceRestarts": 0, "crossedOffers": 0, "resumed": 0},  # the patient never left
        ]
        assert pages.unexpected_problems() == []
        for context in pages.contexts:
            await context.close()
