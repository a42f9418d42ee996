"""The tools of the service configuration's `privileges` in real browsers: the chat between
two pages, screen sharing swapping the camera sent for the screen and back, and a page whose
level has neither tool shows neither control."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.helpers import TEXTS
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import CHROMIUM_ARGS, CONNECTED, Call
from tests.test_webrtc_browser import call as call  # the two pages in the call

EN, IT = TEXTS["en"], TEXTS["it"]
PATIENTS_WITHOUT_TOOLS: dict[str, Any] = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"chat": False}},
        "plus": {"groups": ["doctor"]},
    }
}


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
