"""The tools of the service configuration's `privileges` in real browsers: the chat between
two pages, screen sharing swapping the camera sent for the screen and back (a page without a
camera too, offering or answering), and a page whose level has neither tool shows neither
control."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.helpers import TEXTS
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import CHROMIUM_ARGS, CONNECTED, Call, frames_decoded
from tests.test_webrtc_browser import call as call  # the two pages in the call

EN, IT = TEXTS["en"], TEXTS["it"]
PATIENTS_WITHOUT_TOOLS: dict[str, Any] = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"chat": False}},
        "plus": {"groups": ["doctor"]},
    }
}

NO_CAMERA = """{
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (asked) => original({ ...asked, video: false });
}"""
"""A page whose device has no camera: its media is its microphone only."""


@pytest.fixture
def chromium_args() -> list[str]:
    # getDisplayMedia headless: Chromium's fake capture, chosen without a prompt.
    return [*CHROMIUM_ARGS, "--auto-select-desktop-capture-source=Entire screen"]


@pytest.fixture
def bypass_csp() -> bool:
    return True  # axe-core is added to the pages


async def chat_both_ways(doctor: Page, patient: Page) -> None:
    """The doctor (in English) writes, the patient (in Italian) reads and answers: each line
    with its sender's name, the doctor's own as "You"."""
    await expect(doctor.get_by_role("textbox", name=EN["chat_label"])).to_be_visible()
    await doctor.get_by_role("textbox", name=EN["chat_label"]).fill("Please show me the rash.")
    await doctor.get_by_role("button", name=EN["chat_send"]).click()
    log = patient.get_by_role("log")
    await expect(log).to_contain_text("Please show me the rash.")
    await expect(log.locator(".chat-meta")).to_contain_text("Joe Smith")
    await expect(doctor.get_by_role("log").locator(".chat-meta")).to_contain_text(EN["you"])
    await expect(doctor.get_by_role("textbox", name=EN["chat_label"])).to_have_value("")
    await patient.get_by_role("textbox", name=IT["chat_label"]).fill("Certo.")
    await patient.get_by_role("textbox", name=IT["chat_label"]).press("Enter")
    await expect(doctor.get_by_role("log")).to_contain_text("Certo.")
    await expect(doctor.get_by_role("log").locator(".chat-meta").nth(1)).to_contain_text("Jane Doe")


async def test_a_chat_message_reaches_the_other_page(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    await chat_both_ways(doctor, patient)
    assert await serious_violations(doctor) == []
    await screenshot(doctor, "in-call-chat-en")
    assert call.problems == []


async def test_screen_sharing_swaps_the_camera_sent_and_back(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    share = doctor.get_by_role("button", name=EN["share_screen"])
    await expect(share).to_be_visible()
    sharing_label = patient.locator(".tile.remote .sharing-label")
    await expect(sharing_label).to_be_hidden()
    camera = await doctor.evaluate("window.__call.sentVideoLabels()")
    await share.click()
    stop = doctor.get_by_role("button", name=EN["stop_sharing"])
    await expect(stop).to_be_visible()
    await expect(stop).to_have_attribute("aria-pressed", "true")
    await doctor.wait_for_function(
        "(camera) => JSON.stringify(window.__call.sentVideoLabels()) !== camera",
        arg=str(camera).replace("'", '"'),
    )
    assert await doctor.evaluate("window.__call.tools.sharing") is True
    # The other side's tile says it in words, in its own language.
    await expect(sharing_label).to_be_visible()
    await expect(sharing_label).to_have_text(IT["peer_sharing"].replace("{name}", "Joe Smith"))
    await screenshot(doctor, "in-call-sharing-en")
    await screenshot(patient, "in-call-peer-sharing-it")
    await patient.set_viewport_size({"width": 390, "height": 844})
    await screenshot(patient, "in-call-peer-sharing-phone-it")
    assert await serious_violations(patient) == []
    # A page that joins while the doctor shares is told too.
    await patient.reload()
    await patient.get_by_role("button", name=IT["join"]).click()
    await patient.wait_for_function(CONNECTED, arg=1, polling=100)
    await expect(sharing_label).to_be_visible()
    await expect(sharing_label).to_have_text(IT["peer_sharing"].replace("{name}", "Joe Smith"))
    await stop.click()
    await expect(share).to_be_visible()
    await expect(sharing_label).to_be_hidden()
    assert await doctor.evaluate("window.__call.sentVideoLabels()") == camera
    assert call.problems == []


async def desktop_and_phone(page: Page, name: str) -> None:
    """The page's screenshots on a desktop and on a phone (390x844)."""
    await screenshot(page, name)
    size = page.viewport_size
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, f"{name}-phone")
    assert size is not None
    await page.set_viewport_size(size)


async def rejoin(page: Page, join: str) -> None:
    """The page opened again and joined: connected to the other page."""
    await page.reload()
    await page.get_by_role("button", name=join).click()
    await page.wait_for_function(CONNECTED, arg=1, polling=100)


async def share_without_camera(doctor: Page, patient: Page, shots: str = "") -> None:
    """The patient, without a camera, shares their screen: the doctor's tile says so and
    decodes its frames (the doctor's page in `shots` screenshots, desktop and phone);
    stopping shows "Camera off" again."""
    tile = doctor.locator(".tile.remote")
    await expect(tile.locator(".camera-off")).to_have_text(EN["peer_camera_off"])
    await expect(tile.locator(".camera-off")).to_be_visible()
    before = await doctor.evaluate("window.__call.videoFramesDecoded()")
    sent = await patient.evaluate("window.__call.rtpCounts()")
    assert [counts["framesEncoded"] for counts in sent.values()] == [0]  # nothing, not black
    await patient.get_by_role("button", name=IT["share_screen"]).click()
    await expect(patient.get_by_role("button", name=IT["stop_sharing"])).to_be_visible()
    sharing = tile.locator(".sharing-label")
    await expect(sharing).to_have_text(EN["peer_sharing"].replace("{name}", "Jane Doe"))
    await expect(tile.locator(".camera-off")).to_be_hidden()
    await frames_decoded(doctor, before, frames=10)  # the screen's frames, peer to peer
    label, box = await sharing.bounding_box(), await tile.locator(".remove-peer").bounding_box()
    assert label is not None
    assert box is not None  # Remove beside the label, not on top of it
    assert box["x"] + box["width"] <= label["x"] or box["y"] + box["height"] <= label["y"]
    if shots:
        assert await serious_violations(doctor) == []
        await desktop_and_phone(doctor, shots)
    await patient.get_by_role("button", name=IT["stop_sharing"]).click()
    await expect(sharing).to_be_hidden()
    await expect(tile.locator(".camera-off")).to_have_text(EN["peer_camera_off"])
    assert await patient.evaluate("window.__call.sentVideoLabels()") == []


async def test_a_page_without_a_camera_shares_its_screen_offering_or_answering(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    await patient.context.add_init_script(NO_CAMERA)
    await rejoin(patient, IT["join"])  # the newcomer: it offers
    await expect(patient.locator("#toggle-camera")).to_be_disabled()
    await share_without_camera(doctor, patient, "webrtc-no-camera-sharing-en")
    await rejoin(doctor, EN["join"])  # the doctor offers now: the patient's page answers
    await share_without_camera(doctor, patient)
    # A page joining while it shares is sent the screen.
    await patient.get_by_role("button", name=IT["share_screen"]).click()
    await expect(patient.get_by_role("button", name=IT["stop_sharing"])).to_be_visible()
    await rejoin(doctor, EN["join"])
    sharing = doctor.locator(".tile.remote .sharing-label")
    await expect(sharing).to_have_text(EN["peer_sharing"].replace("{name}", "Jane Doe"))
    await frames_decoded(doctor, {}, frames=10)
    assert call.problems == []
