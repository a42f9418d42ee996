"""Audio only when the connection cannot carry video, in real browsers (two replicas, one
store): the doctor's page reads poor statistics for a while, stops sending video to the
patient (the video encoding inactive, no frame encoded) while its audio keeps flowing, and
both pages say so in words; after good readings for a while the video comes back.

The readings are forced by wrapping `RTCPeerConnection.prototype.getStats` in the running page
(FORCED_READINGS): the page looks the method up on every poll, so the production path (the
tile's grade, quality.js's hysteresis, `setParameters`, the `video-paused` message) is the one
exercised; only the round-trip time and the video frame rate it reads are replaced. A page
without a camera pauses and resumes the screen it shares the same way.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.helpers import TEXTS
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import Call, frames_decoded
from tests.test_webrtc_browser import call as call  # the two pages in the call
from tests.test_webrtc_tools_browser import NO_CAMERA, rejoin
from tests.test_webrtc_tools_browser import chromium_args as chromium_args  # fake camera, screen

EN, IT = TEXTS["en"], TEXTS["it"]
PAUSE_SECONDS, RESUME_SECONDS = 5, 10  # quality.js's PAUSE_AFTER_MS and RESUME_AFTER_MS
FORCED_READINGS = """(() => {
  const real = RTCPeerConnection.prototype.getStats;
  RTCPeerConnection.prototype.getStats = async function (...args) {
    const report = await real.apply(this, args);
    const forced = window.__forcedReadings;  // test-only: {rtt, fps}, or null for real ones
    if (!forced) return report;
    const copy = new Map();
    report.forEach((stat, id) => {
      if (stat.type === "candidate-pair") stat = { ...stat, currentRoundTripTime: forced.rtt };
      else if (stat.type === "inbound-rtp" && stat.kind === "video") stat = { ...stat, framesPerSecond: forced.fps };
      copy.set(id, stat);
    });
    return copy;
  };
})()"""
POOR = "window.__forcedReadings = { rtt: 1.5, fps: 30 }"
GOOD = "window.__forcedReadings = { rtt: 0.02, fps: 30 }"
NO_VIDEO = re.compile(r"\bno-video\b")


@pytest.fixture
def bypass_csp() -> bool:
    return True  # axe-core is added to the pages


async def sent(page: Page) -> dict[str, Any]:
    """The page's RTP counters toward its only peer."""
    counts: dict[str, dict[str, Any]] = await page.evaluate("window.__call.rtpCounts()")
    assert len(counts) == 1, counts
    return next(iter(counts.values()))


async def test_a_weak_connection_pauses_the_video_keeps_the_audio_and_says_so(
    call: Call,
) -> None:
    doctor, patient = call.doctor, call.patient
    notice = doctor.locator("#weak-link")
    paused_tile = patient.locator(".tile.remote .video-paused")
    await expect(notice).to_be_empty()
    await expect(paused_tile).to_be_hidden()
    assert (await sent(doctor))["videoActive"] is True
    for page in (doctor, patient):
        await page.evaluate(FORCED_READINGS)
    await patient.evaluate(GOOD)  # only the doctor's side reads poor, however busy the machine

    await doctor.evaluate(POOR)
    await expect(doctor.locator(".tile.remote .quality")).to_have_text(EN["quality_poor"])
    await expect(notice).to_have_text(EN["weak_link"], timeout=(PAUSE_SECONDS + 5) * 1000)
    await expect(notice).to_have_attribute("role", "status")
    await expect(paused_tile).to_be_visible()
    await expect(paused_tile).to_have_text(IT["peer_video_paused"].replace("{name}", "Joe Smith"))
    await expect(patient.locator(".tile.remote")).to_have_class(NO_VIDEO)

    # The video sender stops: inactive, no frame encoded; the audio flows both ways.
    before, heard = await sent(doctor), await sent(patient)
    assert before["videoActive"] is False
    await asyncio.sleep(2)
    after, heard_after = await sent(doctor), await sent(patient)
    assert after["framesEncoded"] == before["framesEncoded"]
    assert after["audioSent"] > before["audioSent"]
    assert heard_after["audioReceived"] > heard["audioReceived"]
    assert heard_after["videoActive"] is True  # the patient's own link is fine: it still sends

    for page, language in ((doctor, "en"), (patient, "it")):
        assert await serious_violations(page) == []
        await screenshot(page, f"in-call-weak-link-{language}")
        await page.set_viewport_size({"width": 390, "height": 844})
        await screenshot(page, f"in-call-weak-link-phone-{language}")
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        await page.emulate_media(color_scheme="dark")
        assert await serious_violations(page) == []
        await screenshot(page, f"in-call-weak-link-phone-{language}-dark")
        await page.emulate_media(color_scheme="light")
        await page.set_viewport_size({"width": 1280, "height": 800})

    # Good readings for long enough: the video is sent again, and the words go.
    await doctor.evaluate(GOOD)
    await expect(notice).to_be_empty(timeout=(RESUME_SECONDS + 5) * 1000)
    await expect(paused_tile).to_be_hidden()
    await expect(patient.locator(".tile.remote")).not_to_have_class(NO_VIDEO)
    resumed = await sent(doctor)
    assert resumed["videoActive"] is True
    await frames_decoded(patient, await patient.evaluate("window.__call.videoFramesDecoded()"))
    assert (await sent(doctor))["framesEncoded"] > resumed["framesEncoded"]
    assert call.problems == []


async def test_a_page_without_a_camera_pauses_and_resumes_its_shared_screen(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    await patient.context.add_init_script(NO_CAMERA)
    await rejoin(patient, IT["join"])
    await patient.evaluate(FORCED_READINGS)
    await patient.evaluate(POOR)
    await expect(patient.locator("#weak-link")).to_have_text(
        IT["weak_link"], timeout=(PAUSE_SECONDS + 5) * 1000
    )
    assert (await sent(patient))["videoActive"] is False
    await patient.get_by_role("button", name=IT["share_screen"]).click()
    tile = doctor.locator(".tile.remote")
    await expect(tile.locator(".sharing-label")).to_be_visible()
    await expect(tile.locator(".video-paused")).to_be_visible()  # the screen, paused
    await asyncio.sleep(2)
    assert (await sent(patient))["framesEncoded"] == 0
    await patient.evaluate(GOOD)
    await expect(tile.locator(".video-paused")).to_be_hidden(timeout=(RESUME_SECONDS + 5) * 1000)
    await frames_decoded(doctor, {}, frames=10)
    assert call.problems == []
