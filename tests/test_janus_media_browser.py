"""The others' microphone and camera on a janus call, through a real Janus
(`test_janus_browser.py`'s fixtures): Debian's chromium pages in the test's network namespace.

Each page tells the others whether its microphone and camera are on over its videoroom data
channel (the chat's), and their tiles say it in words, as on `webrtc`'s page; a page joining
later learns it too. A page without a camera publishes a video all the same, so it can share
its screen: the other page sees the screen label and decodes its frames.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from playwright.async_api import Browser, Page, expect

from tests.helpers import PATIENT, TEXTS, FrozenClock
from tests.janus_server import (  # noqa: F401 - the fixtures, found by their names
    JanusServer,
    events_port_fixture,
    janus_fixture,
    janus_namespace_fixture,
)
from tests.test_call_page_browser import serious_violations
from tests.test_janus_browser import (  # noqa: F401 - the fixtures, found by their names
    DOCTOR,
    consultation,
    namespaced_browser,
    open_page,
    service,
    video_from_everyone,
)
from tests.test_janus_tools_browser import Pages, shots
from tests.test_janus_tools_browser import call as call  # the two pages in the call

EN, IT = TEXTS["en"], TEXTS["it"]
NO_CAMERA = """{
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (asked) => original({ ...asked, video: false });
}"""
"""A page whose device has no camera: its media is its microphone only."""


async def toggle_both(page: Page) -> None:
    await page.locator("#toggle-mic").click()
    await page.locator("#toggle-camera").click()


async def test_the_others_microphone_and_camera_off_show_on_their_tile_through_janus(
    call: Callable[[], Awaitable[Pages]],
) -> None:
    _, doctor, patient, contexts, problems = await call()
    tile = doctor.locator(".tile.remote")
    await expect(tile.locator(".mic-off")).to_be_hidden()
    await expect(tile.locator(".camera-off")).to_be_hidden()

    await toggle_both(patient)
    await expect(tile.locator(".mic-off")).to_have_text(EN["peer_mic_off"])
    await expect(tile.locator(".camera-off")).to_have_text(EN["peer_camera_off"])
    await expect(tile.locator(".mic-off svg")).to_have_attribute("aria-hidden", "true")
    await expect(tile.locator(".speaking-label")).to_be_hidden()  # muted: not speaking
    await expect(patient.locator("#self-camera-off")).to_have_text(IT["peer_camera_off"])
    await expect(doctor.locator("#self-camera-off")).to_be_hidden()
    assert await serious_violations(doctor) == []
    await shots(doctor, "janus-in-call-peer-muted-en")

    await toggle_both(patient)
    await expect(tile.locator(".mic-off")).to_be_hidden()
    await expect(tile.locator(".camera-off")).to_be_hidden()
    await expect(patient.locator("#self-camera-off")).to_be_hidden()
    # The patient's tile on the doctor's page says the same the other way round, in Italian.
    await doctor.locator("#toggle-mic").click()
    other = patient.locator(".tile.remote")
    await expect(other.locator(".mic-off")).to_have_text(IT["peer_mic_off"])
    await expect(other.locator(".camera-off")).to_be_hidden()
    assert await serious_violations(patient) == []
    await shots(patient, "janus-in-call-peer-muted-it")

    # A page joining later learns it too: the patient's page opened again.
    await patient.reload()
    await patient.get_by_role("button", name=IT["join"]).click()
    await video_from_everyone(patient, 1)
    await expect(other.locator(".mic-off")).to_have_text(IT["peer_mic_off"])
    await expect(tile.locator(".mic-off")).to_be_hidden()  # its own, as it rejoined
    for context in contexts:
        await context.close()
    assert problems == []


async def test_a_page_without_a_camera_shares_its_screen_through_janus(
    service: str,  # noqa: F811 - the imported fixture
    namespaced_browser: Browser,  # noqa: F811 - the imported fixture
    janus: JanusServer,
    clock: FrozenClock,
) -> None:
    links = (await consultation(service, clock, DOCTOR, PATIENT))[1]
    problems: list[str] = []
    doctor_context, doctor = await open_page(namespaced_browser, links["doctor-1"], problems)
    patient_context, patient = await open_page(
        namespaced_browser, links["patient-1"], problems, bypass_csp=True, init_script=NO_CAMERA
    )
    for page in (doctor, patient):
        await page.locator("#join").click()
    await video_from_everyone(patient, 1)  # the doctor's camera
    assert await patient.evaluate("window.__call.sentVideoLabels()") == []
    await expect(patient.locator("#toggle-camera")).to_be_disabled()
    await expect(patient.locator("#self-camera-off")).to_have_text(IT["peer_camera_off"])
    await expect(patient.locator("#self-camera-off")).to_be_visible()  # its own tile says so
    tile = doctor.locator(".tile.remote")
    await expect(tile.locator(".camera-off")).to_have_text(EN["peer_camera_off"])
    await expect(tile.locator(".mic-off")).to_be_hidden()
    await shots(doctor, "janus-in-call-peer-no-camera-en")

    await patient.get_by_role("button", name=IT["share_screen"]).click()
    await expect(patient.get_by_role("button", name=IT["stop_sharing"])).to_have_attribute(
        "aria-pressed", "true"
    )
    sharing = tile.locator(".sharing-label")
    await expect(sharing).to_have_text(EN["peer_sharing"].replace("{name}", "Jane Doe"))
    await expect(sharing).to_be_visible()
    await expect(tile.locator(".camera-off")).to_be_hidden()  # the screen is sent
    assert len(await patient.evaluate("window.__call.sentVideoLabels()")) == 1
    await video_from_everyone(doctor, 1)  # the screen's frames, through Janus
    assert await serious_violations(patient) == []
    await shots(patient, "janus-in-call-no-camera-sharing-it")
    await shots(doctor, "janus-in-call-peer-no-camera-sharing-en")

    await patient.get_by_role("button", name=IT["stop_sharing"]).click()
    await expect(sharing).to_be_hidden()
    await expect(tile.locator(".camera-off")).to_have_text(EN["peer_camera_off"])
    assert await patient.evaluate("window.__call.sentVideoLabels()") == []
    for context in (doctor_context, patient_context):
        await context.close()
    assert problems == []
