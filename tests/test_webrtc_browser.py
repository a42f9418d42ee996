"""A real call in a real browser: Debian's chromium, driven by Playwright, on two replicas.

The doctor's page talks to one app and the patient's to another, both on one store,
so the call is set up through the store's mailboxes. Chromium's fake camera and
microphone stand in for devices; an init script drops every ICE candidate that is
not 127.x, so the media stays on this machine (loopback, never the network).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, BrowserContext, Page, expect
from teleconsult_webrtc import WebRTCVideo

from teleconsult.services import SERVICES
from tests.helpers import (
    CHROMIUM_OFFLINE,
    PATIENT,
    STARTED,
    TEXTS,
    WEBRTC,
    AppServing,
    FrozenClock,
    free_port,
    path_of,
    person,
    teleconsultation,
)

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a synthetic camera and microphone
    "--use-fake-ui-for-media-stream",  # no permission prompt
    "--allow-loopback-in-peer-connection",  # 127.0.0.1 ICE candidates
    *CHROMIUM_OFFLINE,
]
TIMEOUT_MS = 15_000
DOCTOR = person("doctor-1", ["doctor"], "Joe Smith", "en")
EN, IT = TEXTS["en"], TEXTS["it"]

LOOPBACK_ONLY = """
(() => {
  const loopback = (address) => !!address && address.startsWith("127.");
  const address = (line) => (line || "").replace(/^a=/, "").split(" ")[4];
  const add = RTCPeerConnection.prototype.addIceCandidate;
  RTCPeerConnection.prototype.addIceCandidate = function (candidate, ...rest) {
    if (candidate && candidate.candidate && !loopback(address(candidate.candidate))) {
      return Promise.resolve();
    }
    return add.call(this, candidate, ...rest);
  };
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (description, ...rest) {
    if (description && description.sdp) {
      const sdp = description.sdp.split("\\r\\n")
        .filter((line) => !line.startsWith("a=candidate:") || loopback(address(line)))
        .join("\\r\\n");
      description = { type: description.type, sdp };
    }
    return setRemote.call(this, description, ...rest);
  };
})();
"""
"""Test-only: whatever interfaces the machine has, the browsers only ever try 127.x."""

CONNECTED = """(n) => {
  const states = Object.values(window.__call.connectionStates());
  return states.length === n && states.every((state) => state === "connected");
}"""


@pytest.fixture
def chromium_args() -> list[str]:
    return CHROMIUM_ARGS


async def new_page(
    browser: Browser, problems: list[str], bypass_csp: bool = False
) -> tuple[BrowserContext, Page]:
    """A page of its own (its own camera), whose console errors the test collects;
    `bypass_csp` lets a test add axe-core to it."""
    context = await browser.new_context(permissions=["camera", "microphone"], bypass_csp=bypass_csp)
    await context.add_init_script(LOOPBACK_ONLY)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    expected = ("status of 410",)  # the reload of an ended call's page

    def on_console(message: Any) -> None:
        if message.type == "error" and not any(text in message.text for text in expected):
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return context, page


async def frames_decoded(page: Page, more_than: dict[str, int], frames: int = 15) -> dict[str, int]:
    """Poll getStats() until every peer decoded `frames` more video frames than `more_than`.

    (`wait_for_function` does not wait for a promise: a predicate returning one passes
    at once, so the asynchronous getStats() is polled from here.)
    """
    for _ in range(TIMEOUT_MS // 100):
        now: dict[str, int] = await page.evaluate("window.__call.videoFramesDecoded()")
        if now and all(count >= more_than.get(peer, 0) + frames for peer, count in now.items()):
            return now
        await asyncio.sleep(0.1)
    raise AssertionError(f"video frames did not grow: {more_than} -> {now}")


@pytest.fixture
def bypass_csp() -> bool:
    """Whether the call's pages let a test add axe-core (a module may override it)."""
    return False


@dataclass
class Call:
    """A teleconsultation, locked, with its participants' pages open and joined."""

    api: str
    room_id: str
    doctor: Page
    patient: Page
    problems: list[str]
    provider: WebRTCVideo
    """The first replica's provider (the doctor's)."""
    replicas: tuple[str, str]
    """Both replicas' addresses: the doctor's, then the patient's."""


@pytest.fixture
async def call(
    service_config: dict[str, Any] | None,
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
    bypass_csp: bool,
) -> AsyncIterator[Call]:
    """The doctor's page on one replica, the patient's on another (one store), both in the
    call: each saw its own preview, the doctor waited, then both connected."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    settings = {**WEBRTC, "WEBRTC_PUBLIC_URL": api, "WEBRTC_HEARTBEAT_MS": "200"}
    first = await app_server(build_app(service_config, **settings), port=port)
    second = await app_server(build_app(service_config, **settings))
    async with ClientSession(api) as session:
        created = await session.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
        room_id = (await created.json())["roomId"]
        clock.now = STARTED  # the call is due: links are handed out
        links = {}
        for user in ("doctor-1", "patient-1"):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links[user] = (await answer.json())["accessLinkURL"]
    problems: list[str] = []
    doctor_context, doctor = await new_page(browser, problems, bypass_csp)
    patient_context, patient = await new_page(browser, problems, bypass_csp)

    await doctor.goto(links["doctor-1"])  # the first replica
    await patient.goto(str(second.make_url(path_of(links["patient-1"]))))  # the second
    join = doctor.get_by_role("button", name="Join")
    enter = patient.get_by_role("button", name="Entra")
    await expect(join).to_be_enabled()
    await expect(enter).to_be_enabled()
    await expect(doctor.locator("#roster")).to_have_text(
        f"{EN['participants']}: Joe Smith, Jane Doe"
    )
    await doctor.wait_for_function("() => document.getElementById('self-video').videoWidth > 0")
    await join.click()
    await expect(doctor.locator("#status")).to_have_text(EN["waiting"])
    await enter.click()
    await doctor.wait_for_function(CONNECTED, arg=1, polling=100)
    await patient.wait_for_function(CONNECTED, arg=1, polling=100)
    provider = first.app[SERVICES].video
    assert isinstance(provider, WebRTCVideo)
    replicas = (api, str(second.make_url("")).rstrip("/"))
    yield Call(api, room_id, doctor, patient, problems, provider, replicas)
    await doctor_context.close()
    await patient_context.close()


async def call_metrics(replicas: tuple[str, ...], wanted: dict[str, float]) -> None:
    """Wait until the replicas' /-/metrics, summed, show `wanted` (series -> value)."""
    summed: dict[str, float] = {}
    for _ in range(TIMEOUT_MS // 100):
        summed = dict.fromkeys(wanted, 0.0)
        for replica in replicas:
            async with ClientSession(replica) as session:
                text = await (await session.get("/-/metrics")).text()
            for line in text.splitlines():
                name, _, value = line.rpartition(" ")
                if name in summed:
                    summed[name] += float(value)
        if summed == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the metrics did not reach {wanted}: {summed}")


async def test_two_browsers_on_two_replicas_see_each_other_until_the_call_is_cancelled(
    call: Call,
) -> None:
    doctor, patient = call.doctor, call.patient
    before = [
        await page.evaluate("window.__call.videoFramesDecoded()") for page in (doctor, patient)
    ]
    await frames_decoded(doctor, before[0])
    await frames_decoded(patient, before[1])
    for page in (doctor, patient):
        pairs = await page.evaluate("window.__call.selectedCandidatePairs()")
        assert pairs
        for pair in pairs.values():  # peer-reflexive candidates hide their address
            assert pair["remote"] == "127.0.0.1" or pair["remoteType"] == "prflx", pair
    await call_metrics(  # the offering page reported its path: direct, over loopback
        call.replicas,
        {
            'teleconsult_calls_connected_total{path="direct"}': 1.0,
            'teleconsult_calls_connected_total{path="relay"}': 0.0,
            "teleconsult_calls_in_progress": 1.0,
            "teleconsult_call_pages_connected": 2.0,
        },
    )
    await expect(doctor.locator(".tile.remote .name")).to_have_text("Jane Doe")
    await expect(patient.locator(".tile.remote .name")).to_have_text("Joe Smith")
    await expect(doctor.locator("#end-all")).to_be_visible()  # the plus participant only
    await expect(patient.locator("#end-all")).to_be_hidden()

    async with ClientSession(call.api) as session:
        cancelled = await session.delete(f"/teleconsultation/{call.room_id}")
        assert cancelled.status == 204

    await expect(doctor.locator("#status")).to_have_text(EN["ended"])
    await expect(patient.locator("#status")).to_have_text(IT["ended"])
    for page in (doctor, patient):
        assert await page.evaluate("window.__call.peerIds()") == []
        assert await page.evaluate("window.__call.localTrackStates()") == []  # camera released
    reloaded = await patient.reload()
    assert reloaded is not None
    assert reloaded.status == 410
    await expect(patient.locator("#refused")).to_have_text(IT["cancelled"])
    assert call.problems == []


async def test_the_controls_leave_rejoin_reconnect_and_end_the_call_for_everyone(
    call: Call,
) -> None:
    doctor, patient = call.doctor, call.patient
    camera = doctor.locator("#toggle-camera")
    await camera.click()
    await expect(camera).to_have_attribute("aria-pressed", "true")
    await expect(camera).to_have_text(EN["camera_on"])
    tracks = await doctor.evaluate("window.__call.localTrackStates()")
    assert {track["kind"]: track["enabled"] for track in tracks} == {"audio": True, "video": False}
    await camera.click()
    await patient.locator("#toggle-mic").click()
    tracks = await patient.evaluate("window.__call.localTrackStates()")
    assert {track["kind"]: track["enabled"] for track in tracks} == {"audio": False, "video": True}

    await patient.get_by_role("button", name=IT["leave"]).click()
    await expect(patient.locator("#status")).to_have_text(IT["left"])
    await expect(doctor.locator("#status")).to_have_text(EN["waiting"])
    await patient.get_by_role("button", name=IT["join_again"]).click()
    await doctor.wait_for_function(CONNECTED, arg=1, polling=100)
    await patient.wait_for_function(CONNECTED, arg=1, polling=100)
    await frames_decoded(patient, {})

    # The doctor's page loses its presence (as when no replica listed it for three
    # heartbeats: the room drops it and tells it): the connection closes (1013), and the
    # page joins again by itself, and says so.
    [room] = await call.provider.rooms.ids()
    before = await doctor.evaluate("window.__call.selfId")
    await call.provider.rooms.leave(room, before)
    await call.provider.rooms.post(before, {"type": "evicted"})
    await doctor.wait_for_function("(id) => window.__call.selfId !== id", arg=before)
    await doctor.wait_for_function(CONNECTED, arg=1, polling=100)
    await patient.wait_for_function(CONNECTED, arg=1, polling=100)
    await frames_decoded(doctor, {})
    await call_metrics(call.replicas, {"teleconsult_call_reconnections_total": 1.0})

    end = doctor.locator("#end-all")
    await expect(end).to_have_text(EN["end_for_all"])
    await end.click()
    confirm = doctor.locator("#end-confirm")  # a dialog asks; its button ends it
    await expect(confirm).to_have_text(EN["end_confirm"])
    await confirm.click()
    await expect(doctor.locator("#status")).to_have_text(EN["ended"])
    await expect(patient.locator("#status")).to_have_text(IT["ended"])
    reloaded = await doctor.reload()
    assert reloaded is not None
    assert reloaded.status == 410
    await expect(doctor.locator("#refused")).to_have_text(EN["ended"])
    assert call.problems == []
