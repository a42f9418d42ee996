"""In the call, in real browsers (two replicas, one store): the others' microphone and camera
off on their tiles, in words; the connection's quality and who speaks; "end for everyone"
asks in a dialog; a page replaced by the same participant elsewhere releases its devices."""

from __future__ import annotations

from playwright.async_api import expect

from tests.helpers import TEXTS
from tests.test_call_page_browser import screenshot
from tests.test_webrtc_browser import Call
from tests.test_webrtc_browser import call as call  # the two pages in the call
from tests.test_webrtc_browser import chromium_args as chromium_args  # the fake camera

EN, IT = TEXTS["en"], TEXTS["it"]


async def test_the_others_microphone_and_camera_off_show_on_their_tile(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    tile = doctor.locator(".tile.remote")
    await expect(tile.locator(".mic-off")).to_be_hidden()
    await expect(tile.locator(".camera-off")).to_be_hidden()

    await patient.locator("#toggle-mic").click()
    await patient.locator("#toggle-camera").click()
    await expect(tile.locator(".mic-off")).to_have_text(EN["peer_mic_off"])
    await expect(tile.locator(".camera-off")).to_have_text(EN["peer_camera_off"])
    await expect(tile.locator(".mic-off svg")).to_have_attribute("aria-hidden", "true")
    await expect(tile.locator(".speaking-label")).to_be_hidden()  # muted: not speaking
    await screenshot(doctor, "in-call-peer-muted-en")

    await patient.locator("#toggle-mic").click()
    await patient.locator("#toggle-camera").click()
    await expect(tile.locator(".mic-off")).to_be_hidden()
    await expect(tile.locator(".camera-off")).to_be_hidden()
    # The patient's tile on the doctor's page says the same the other way round, in Italian.
    await doctor.locator("#toggle-camera").click()
    await expect(patient.locator(".tile.remote .camera-off")).to_have_text(IT["peer_camera_off"])
    assert call.problems == []


async def test_each_tile_says_how_good_the_connection_is_and_who_speaks(call: Call) -> None:
    doctor = call.doctor
    quality = doctor.locator(".tile.remote .quality")
    await expect(quality).to_be_visible()
    words = {EN["quality_good"], EN["quality_fair"], EN["quality_poor"]}
    assert await quality.text_content() in words
    # Chromium's fake microphone beeps: the tile says, in words, that the patient speaks.
    speaking = doctor.locator(".tile.remote .speaking-label")
    await expect(speaking).to_have_text(EN["speaking"])
    await expect(doctor.locator(".tile.remote.speaking")).to_have_count(1)
    assert call.problems == []
