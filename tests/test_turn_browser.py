"""Calls through a real TURN server (Debian's coturn) in real browsers (Debian's chromium,
fake camera and microphone): with `WEBRTC_ICE_TRANSPORT_POLICY=relay` on loopback, and in
two network namespaces that cannot reach each other, where only TURN connects the call.

Every packet stays on this machine: loopback, or the namespaces and veth pairs the test
makes and removes (tests/netns.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)

from tests.helpers import (
    PATIENT,
    STARTED,
    TEXTS,
    WEBRTC,
    AppServing,
    FrozenClock,
    free_port,
    person,
    teleconsultation,
)
from tests.netns import TURN_ADDRESS, Networks, chromium_in, listening_socket, two_networks
from tests.test_webrtc_browser import CHROMIUM_ARGS, CONNECTED, TIMEOUT_MS, frames_decoded
from tests.turn import Coturn, coturn, self_signed, spki_sha256

DOCTOR = person("doctor-1", ["doctor"], "Joe Smith", "en")
EN, IT = TEXTS["en"], TEXTS["it"]
NOT_CONNECTED_BOUND_S = 6.0
"""How long pages with no path between them are watched not connecting (through TURN the
same pages connect in about a second)."""

RECORDER = """
(() => {
  // Test-only: what this page's peer connections learned of the other page's candidates,
  // from the signaling (the SDP and each trickled candidate), before anything is dropped.
  const ice = { received: [], connections: new Set() };
  window.__ice = ice;
  const type = (line) => / typ (\\w+)/.exec(line || "")?.[1] || "?";
  const add = RTCPeerConnection.prototype.addIceCandidate;
  RTCPeerConnection.prototype.addIceCandidate = function (candidate, ...rest) {
    ice.connections.add(this);
    if (candidate && candidate.candidate) ice.received.push(type(candidate.candidate));
    return add.call(this, candidate, ...rest);
  };
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description, ...rest) {
    ice.connections.add(this);
    for (const line of (description?.sdp || "").split("\\r\\n")) {
      if (line.startsWith("a=candidate:")) ice.received.push(type(line));
    }
    return setRemote.call(this, description, ...rest);
  };
})();
"""

STATS = """async () => {
  const found = { policies: [], local: [], remote: [], relayProtocols: [] };
  for (const pc of window.__ice.connections) {
    found.policies.push(pc.getConfiguration().iceTransportPolicy);
    (await pc.getStats()).forEach((stat) => {
      if (stat.type === "local-candidate") found.local.push(stat.candidateType);
      if (stat.type === "local-candidate" && stat.relayProtocol) found.relayProtocols.push(stat.relayProtocol);
      if (stat.type === "remote-candidate") found.remote.push(stat.candidateType);
    });
  }
  return found;
}"""
"""The candidates each peer connection knows, by type, from getStats()."""


@pytest.fixture
def chromium_args() -> list[str]:
    return CHROMIUM_ARGS


@dataclass
class Call:
    """Two pages of one consultation, the doctor's and the patient's, each in its own context."""

    doctor: Page
    patient: Page
    contexts: tuple[BrowserContext, BrowserContext]

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


async def open_page(
    browser: Browser, link: str, problems: list[str]
) -> tuple[BrowserContext, Page]:
    """The page of `link` with its candidates recorded; its console errors go to `problems`."""
    context = await browser.new_context(permissions=["camera", "microphone"])
    await context.add_init_script(RECORDER)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    await page.goto(link)
    return context, page


async def both_join(
    browsers: tuple[Browser, Browser], links: dict[str, str], problems: list[str]
) -> Call:
    """The doctor's page (first browser) joins and waits, then the patient's (second, Italian)."""
    doctor_context, doctor = await open_page(browsers[0], links["doctor-1"], problems)
    patient_context, patient = await open_page(browsers[1], links["patient-1"], problems)
    join = doctor.get_by_role("button", name=EN["join"])
    enter = patient.get_by_role("button", name=IT["join"])
    await expect(join).to_be_enabled()
    await expect(enter).to_be_enabled()
    await join.click()
    await expect(doctor.locator("#status")).to_have_text(EN["waiting"])
    await enter.click()
    return Call(doctor, patient, (doctor_context, patient_context))


async def connected_pairs(page: Page) -> list[tuple[str, str]]:
    """Once the page is connected and its peer's video decodes: the selected candidate pair's
    (local, remote) types."""
    await page.wait_for_function(CONNECTED, arg=1, polling=100)
    await frames_decoded(page, {})
    pairs = await page.evaluate("window.__call.selectedCandidatePairs()")
    return [(pair["localType"], pair["remoteType"]) for pair in pairs.values()]


async def serve(
    app_server: AppServing, app: Callable[..., web.Application], settings: dict[str, str]
) -> str:
    """A webrtc app with `settings`, on loopback: its URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    await app_server(app(None, **WEBRTC, WEBRTC_PUBLIC_URL=api, **settings), port=port)
    return api


async def links_of(api: str, clock: FrozenClock) -> dict[str, str]:
    """A consultation of the doctor and the patient, locked: each one's link."""
    async with ClientSession(api) as session:
        created = await session.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
        room_id = (await created.json())["roomId"]
        clock.now = STARTED
        links = {}
        for user in ("doctor-1", "patient-1"):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links[user] = (await answer.json())["accessLinkURL"]
    return links


def turn_settings(server: Coturn, url: str, policy: str) -> dict[str, str]:
    return {
        "WEBRTC_TURN_URLS": url,
        "WEBRTC_TURN_SECRET": server.secret,
        "WEBRTC_ICE_TRANSPORT_POLICY": policy,
    }


# -- relay only, on loopback -----------------------------------------------------------------


@pytest.fixture
def loopback_turn(tmp_path: Path) -> Iterator[Coturn]:
    with coturn(tmp_path) as server:
        yield server


async def test_with_the_relay_policy_the_call_goes_through_turn_and_no_address_reaches_a_peer(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
    loopback_turn: Coturn,
) -> None:
    settings = turn_settings(loopback_turn, loopback_turn.url, "relay")
    stun = f"stun:{loopback_turn.host}:{loopback_turn.port}"  # coturn answers STUN too
    settings["WEBRTC_STUN_URLS"] = stun
    links = await links_of(await serve(app_server, build_app, settings), clock)
    problems: list[str] = []

    call = await both_join((browser, browser), links, problems)

    for page in (call.doctor, call.patient):
        assert await connected_pairs(page) == [("relay", "relay")]
        received = await page.evaluate("window.__ice.received")
        stats = await page.evaluate(STATS)
        assert received, "no candidate reached this page"
        assert set(received) == {"relay"}, received  # no host, no srflx
        assert set(stats["remote"]) == {"relay"}, stats
        assert set(stats["local"]) == {"relay"}, stats
        assert set(stats["policies"]) == {"relay"}, stats
    lobby_check = await call.doctor.evaluate("window.__call.precheck.candidates")
    verdict = await call.doctor.evaluate("window.__call.precheck.network")
    assert (lobby_check["host"], lobby_check["srflx"], verdict) == (0, 0, "check_relay_ok")
    assert lobby_check["relay"] > 0  # the lobby's check gathers as the call will: relay only
    assert problems == []
    await call.close()


# -- two networks that cannot reach each other -------------------------------------------------


@pytest.fixture
def networks() -> Iterator[Networks]:
    with two_networks() as made:
        yield made


@pytest.fixture
async def browsers_in(
    networks: Networks, tmp_path: Path, chromium: str
) -> AsyncIterator[tuple[Browser, Browser]]:
    """A chromium in ns-a and another in ns-b (Playwright drives them over pipes)."""
    async with async_playwright() as playwright:
        launched = [
            await playwright.chromium.launch(
                executable_path=chromium_in(name, tmp_path, chromium), args=CHROMIUM_ARGS
            )
            for name in (networks.a, networks.b)
        ]
        yield launched[0], launched[1]
        for browser in launched:
            await browser.close()


async def serve_in(
    app_server: AppServing,
    app: Callable[..., web.Application],
    networks: Networks,
    settings: dict[str, str],
) -> str:
    """A webrtc app with `settings` on 127.0.0.1:<port> here and in both participants'
    namespaces (the same links open it there): its URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    server = await app_server(app(None, **WEBRTC, WEBRTC_PUBLIC_URL=api, **settings), port=port)
    assert server.runner is not None
    for name in (networks.a, networks.b):
        await web.SockSite(server.runner, listening_socket(name, port)).start()
    return api


async def states_for(page: Page, seconds: float) -> set[str]:
    """Every connection state the page's peer connection shows in `seconds`."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen |= set((await page.evaluate("window.__call.connectionStates()")).values())
        await asyncio.sleep(0.1)
    return seen


async def test_in_networks_that_cannot_reach_each_other_only_turn_connects_the_call(
    networks: Networks,  # first: removed last, once the app's sockets in them are closed
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browsers_in: tuple[Browser, Browser],
    tmp_path: Path,
) -> None:
    problems: list[str] = []
    without_turn = await serve_in(app_server, build_app, networks, {})
    with coturn(
        tmp_path, listening=(TURN_ADDRESS,), relay=TURN_ADDRESS, namespace=networks.turn
    ) as turn:
        settings = turn_settings(turn, turn.url, "all")  # TURN handed out, direct paths allowed
        with_turn = await serve_in(app_server, build_app, networks, settings)

        # Without TURN: the pages meet through the signaling, and never connect.
        call = await both_join(browsers_in, await links_of(without_turn, clock), problems)
        await call.doctor.wait_for_function(
            "() => Object.keys(window.__call.connectionStates()).length === 1"
        )
        seen = await states_for(call.doctor, NOT_CONNECTED_BOUND_S)
        assert "connected" not in seen, seen
        patient_states = await call.patient.evaluate("window.__call.connectionStates()")
        assert "connected" not in patient_states.values(), patient_states
        received = await call.doctor.evaluate("window.__ice.received")
        assert set(received) == {"host"}, received  # the other network's address, unreachable
        await call.close()

        # With TURN handed out: the same two networks, connected through its relay.
        call = await both_join(browsers_in, await links_of(with_turn, clock), problems)
        for page in (call.doctor, call.patient):
            (pair,) = await connected_pairs(page)
            assert "relay" in pair, pair
        await call.close()
    assert problems == []


GATHER = """async (seconds) => {
  const info = await (await fetch(location.pathname + "/info")).json();
  const pc = new RTCPeerConnection({ iceServers: info.iceServers, iceTransportPolicy: info.iceTransportPolicy });
  const found = { candidates: [], errors: [] };
  pc.onicecandidateerror = (event) => found.errors.push([event.errorCode, event.errorText, event.url]);
  const done = new Promise((resolve) => {
    setTimeout(resolve, seconds * 1000);
    pc.onicecandidate = (event) => event.candidate ? found.candidates.push(event.candidate.type) : resolve();
  });
  pc.createDataChannel("probe");
  await pc.setLocalDescription(await pc.createOffer());
  await done;
  pc.close();
  return found;
}"""


@pytest.fixture
def tls_turn(tmp_path: Path) -> Iterator[tuple[Coturn, str]]:
    """coturn with its TLS listener, on a self-signed certificate made here: the server and
    the certificate's key hash."""
    certificate = self_signed(tmp_path)
    with coturn(tmp_path, certificate=certificate) as server:
        yield server, spki_sha256(certificate[0])


async def test_turn_over_tls_relays_the_call_once_the_browser_trusts_the_certificate(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
    chromium: str,
    tls_turn: tuple[Coturn, str],
) -> None:
    server, key_hash = tls_turn
    settings = turn_settings(server, server.tls_url, "relay")  # turns: only
    links = await links_of(await serve(app_server, build_app, settings), clock)
    problems: list[str] = []

    # Chromium checks the TURN server's certificate: a self-signed one gets no relay.
    context, page = await open_page(browser, links["doctor-1"], problems)
    refused = await page.evaluate(GATHER, 10)
    assert refused["candidates"] == []
    assert {(code, url) for code, _, url in refused["errors"]} == {(701, server.tls_url)}
    await context.close()

    # A browser that trusts that certificate's key (as browsers trust a real one) relays the
    # call through coturn's TLS listener.
    async with async_playwright() as playwright:
        trusting = await playwright.chromium.launch(
            executable_path=chromium,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={key_hash}"],
        )
        call = await both_join((trusting, trusting), links, problems)
        for page in (call.doctor, call.patient):
            assert await connected_pairs(page) == [("relay", "relay")]
            assert set((await page.evaluate(STATS))["relayProtocols"]) == {"tls"}
        await trusting.close()
    assert problems == []
