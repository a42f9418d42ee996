"""In the call, in real browsers (two replicas, one store): the others' microphone and camera
off on their tiles, in words; the connection's quality and who speaks; "end for everyone"
asks in a dialog; a page replaced by the same participant elsewhere releases its devices."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tests.helpers import (
    NURSE,
    PATIENT,
    STARTED,
    TEXTS,
    WEBRTC,
    AppServing,
    FrozenClock,
    free_port,
    teleconsultation,
)
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import CONNECTED, DOCTOR, Call, new_page
from tests.test_webrtc_browser import call as call  # the two pages in the call
from tests.test_webrtc_browser import chromium_args as chromium_args  # the fake camera

EN, IT = TEXTS["en"], TEXTS["it"]


@pytest.fixture
def bypass_csp() -> bool:
    return True  # axe-core is added to the pages


NO_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
SPEAKING = """(words) => {
  const tile = document.querySelector(".tile.remote");
  const label = tile.querySelector(".speaking-label");
  return tile.classList.contains("speaking") && !label.hidden && label.textContent === words;
}"""


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
    # (It beeps once a second: the words and the outline come and go together.)
    try:
        await doctor.wait_for_function(SPEAKING, arg=EN["speaking"], polling=50)
    except PlaywrightTimeoutError:
        # What the page knew, for whoever reads a failure: the tile and the audio counters.
        tile = await doctor.locator(".tile.remote").evaluate("(tile) => tile.outerHTML")
        counts = await doctor.evaluate("() => window.__call.rtpCounts()")
        raise AssertionError(f"never speaking: {tile} {counts}") from None
    assert call.problems == []


async def test_ending_for_everyone_asks_in_a_dialog_that_escape_cancels(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    end = doctor.locator("#end-all")
    dialog = doctor.get_by_role("dialog", name=EN["end_question"])
    await end.click()
    await expect(dialog).to_be_visible()
    await expect(doctor.locator("#end-cancel")).to_be_focused()  # focus moved into it
    await expect(dialog).to_contain_text(EN["end_explain"])
    assert await serious_violations(doctor) == []
    await screenshot(doctor, "in-call-end-dialog-en")
    await doctor.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(end).to_be_focused()  # and back

    await end.click()
    await dialog.get_by_role("button", name=EN["cancel"]).click()
    await expect(dialog).to_be_hidden()
    await expect(end).to_be_focused()
    assert await patient.evaluate("window.__call.phase") == "in-call"  # nothing ended

    await end.press("Enter")
    await dialog.get_by_role("button", name=EN["end_confirm"]).click()
    await expect(doctor.locator("#status")).to_have_text(EN["ended"])
    await expect(patient.locator("#status")).to_have_text(IT["ended"])
    assert call.problems == []


async def test_a_page_replaced_by_the_same_participant_elsewhere_frees_its_devices(
    call: Call, browser: Browser
) -> None:
    first = call.patient
    await first.evaluate("window.__before = document.getElementById('self-video').srcObject")
    context, second = await new_page(browser, call.problems)
    await second.goto(first.url)
    await second.get_by_role("button", name=IT["join"]).click()
    await call.doctor.wait_for_function(CONNECTED, arg=1, polling=100)

    await expect(first.locator("#status")).to_have_text(IT["replaced"])
    ended = "() => window.__before.getTracks().map((track) => track.readyState)"
    assert await first.evaluate(ended) == ["ended", "ended"]
    assert await first.evaluate("window.__call.localTrackStates()") == []
    await screenshot(first, "in-call-replaced-it")

    # Joining again here moves the call back, with the camera and microphone opened again.
    await context.close()
    await first.get_by_role("button", name=IT["join_again"]).click()
    await first.wait_for_function(CONNECTED, arg=1, polling=100)
    tracks = await first.evaluate("window.__call.localTrackStates()")
    assert {(track["kind"], track["state"]) for track in tracks} == {
        ("audio", "live"),
        ("video", "live"),
    }
    assert call.problems == []


async def test_three_in_a_call_fit_at_desktop_and_phone_sizes_and_go_full_screen(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    await app_server(build_app(**WEBRTC, WEBRTC_PUBLIC_URL=api), port=port)
    people = (DOCTOR, PATIENT, NURSE)
    async with ClientSession(api) as session:
        created = await session.post("/teleconsultation", json=teleconsultation(3, *people))
        room_id = (await created.json())["roomId"]
        clock.now = STARTED
        links = []
        for user in ("doctor-1", "patient-1", "nurse-1"):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links.append((await answer.json())["accessLinkURL"])
    problems: list[str] = []
    pages = []
    for link in links:
        context, page = await new_page(browser, problems, bypass_csp=True)
        await page.goto(link)
        await page.locator("#join").click()
        pages.append((context, page))
    doctor = pages[0][1]
    for _, page in pages:
        await page.wait_for_function(CONNECTED, arg=2, polling=100)
    await expect(doctor.locator(".tile.remote .quality")).to_have_count(2)

    for width, height, name in ((1280, 800, "desktop"), (390, 844, "phone")):
        await doctor.set_viewport_size({"width": width, "height": height})
        await screenshot(doctor, f"in-call-three-{name}-en")
        assert await doctor.evaluate(NO_SCROLL), name
        assert await serious_violations(doctor) == []

    full = doctor.get_by_role("button", name=EN["fullscreen"])
    await full.click()
    await doctor.wait_for_function("() => document.fullscreenElement?.id === 'app'")
    await doctor.get_by_role("button", name=EN["exit_fullscreen"]).click()
    await doctor.wait_for_function("() => document.fullscreenElement === null")
    await expect(full).to_be_visible()
    for context, _ in pages:
        await context.close()
    assert problems == []
