"""The tools of the service configuration's `privileges` in real browsers: the chat between
two pages, screen sharing swapping the camera sent for the screen and back, and a page whose
level has neither tool shows neither control."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.helpers import TEXTS
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import CHROMIUM_ARGS, Call
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


async def test_a_chat_message_reaches_the_other_page(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
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
    assert await serious_violations(doctor) == []
    await screenshot(doctor, "in-call-chat-en")
    assert call.problems == []


async def test_screen_sharing_swaps_the_camera_sent_and_back(call: Call) -> None:
    doctor = call.doctor
    share = doctor.get_by_role("button", name=EN["share_screen"])
    await expect(share).to_be_visible()
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
    await screenshot(doctor, "in-call-sharing-en")
    await stop.click()
    await expect(share).to_be_visible()
    assert await doctor.evaluate("window.__call.sentVideoLabels()") == camera
    assert call.problems == []
