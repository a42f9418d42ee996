"""In a janus call, through a real Janus (`tests/janus_pages.py`'s fixtures): Debian's
chromium pages in the test's network namespace; the chat, screen sharing and the others'
microphone and camera.

The chat goes over the videoroom's data channels: each page publishes one, Janus relays it to
the page's subscribers. Janus does not check who sends on it, so the receiving page shows a
chat only from a participant whose level has the tool. A shared screen replaces the camera on
the published video and its stream description says so: the other page's tile says it, a
page joining meanwhile too. A level without a tool gets no control for it. Each page tells
the others whether its microphone and camera are on over the same channel, and their tiles
say it in words, as on `webrtc`'s page; a page joining later learns it too. A page without a
camera publishes a video all the same, so it can share its screen: the other page sees the
screen label and decodes its frames."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.helpers import PATIENT, TEXTS, FrozenClock
from tests.janus_pages import (
    DOCTOR,
    consultation,
    open_page,
    video_from_everyone,
)
from tests.janus_server import (
    JanusServer,
)
from tests.test_call_page_browser import serious_violations
from tests.test_webrtc_tools_browser import NO_CAMERA, chat_both_ways
from tests.test_webrtc_tools_browser import desktop_and_phone as shots

EN, IT = TEXTS["en"], TEXTS["it"]
PATIENTS_WITHOUT_TOOLS: dict[str, Any] = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"file_upload": True}},
        "plus": {"groups": ["doctor"]},
    }
}
"""Patients with neither the chat nor screen sharing; doctors with every tool."""
Pages = tuple[dict[str, str], Page, Page, list[BrowserContext], list[str]]


async def in_call(
    url: str, browser: Browser, clock: FrozenClock, patient_script: str | None = None
) -> Pages:
    """The doctor's (English) and the patient's (Italian) pages in one call, each receiving
    the other's video through Janus (the doctor's only when `patient_script`, run first on
    the patient's page, takes its camera away); axe-core may be added to them."""
    links = (await consultation(url, clock, DOCTOR, PATIENT))[1]
    problems: list[str] = []
    contexts, pages = [], []
    for user, script in (("doctor-1", None), ("patient-1", patient_script)):
        context, page = await open_page(
            browser, links[user], problems, bypass_csp=True, init_script=script
        )
        contexts.append(context)
        pages.append(page)
        await page.locator("#join").click()
    for page in pages[1:] if patient_script else pages:
        await video_from_everyone(page, 1)
    return links, pages[0], pages[1], contexts, problems


@pytest.fixture
async def call(
    service: str,
    namespaced_browser: Browser,
    janus: JanusServer,
    clock: FrozenClock,
) -> Callable[..., Awaitable[Pages]]:
    return lambda patient_script=None: in_call(service, namespaced_browser, clock, patient_script)


async def test_a_chat_goes_both_ways_through_janus_and_is_never_logged(
    call: Callable[[], Awaitable[Pages]], janus: JanusServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    links, doctor, patient, contexts, problems = await call()
    async with ClientSession() as session:
        for user in ("doctor-1", "patient-1"):
            tools = await session.get(links[user] + "/tools")
            assert (tools.status, await tools.json()) == (
                200,
                {"tools": ["chat", "screen_sharing"]},
            )
    await chat_both_ways(doctor, patient)
    for page in (doctor, patient):
        assert await page.evaluate("window.__call.chatsDropped()") == 0
        assert await serious_violations(page) == []
    # Neither the service nor Janus wrote it anywhere.
    assert [r for r in caplog.records if "rash" in r.getMessage()] == []
    assert "rash" not in (janus.folder / "janus.log").read_text(errors="replace")
    await shots(doctor, "janus-in-call-chat-en")
    await shots(patient, "janus-in-call-chat-it")
    for context in contexts:
        await context.close()
    assert problems == []


@pytest.mark.parametrize("service_config", [PATIENTS_WITHOUT_TOOLS])
async def test_screen_sharing_is_seen_through_janus_and_a_level_without_tools_has_none(
    call: Callable[[], Awaitable[Pages]],
) -> None:
    links, doctor, patient, contexts, problems = await call()
    async with ClientSession() as session:
        tools = await session.get(links["patient-1"] + "/tools")
        assert (tools.status, await tools.json()) == (200, {"tools": []})
        tools = await session.get(links["doctor-1"] + "/tools")
        assert (tools.status, await tools.json()) == (200, {"tools": ["chat", "screen_sharing"]})
    await expect(patient.locator("#leave")).to_be_visible()
    await expect(patient.locator("#chat")).to_be_hidden()
    await expect(patient.locator("#share-screen")).to_be_hidden()
    await expect(doctor.locator("#chat")).to_be_visible()

    # The patient's page forges a chat anyway (its form shown by hand): Janus relays it, the
    # doctor's page drops it.
    await patient.evaluate("document.getElementById('chat').hidden = false")
    await patient.locator("#chat-text").fill("A forged message")
    await patient.locator("#chat-send").click()
    await expect(patient.locator("#chat-log")).to_contain_text("A forged message")
    await doctor.wait_for_function("window.__call.chatsDropped() === 1", polling=100)
    await expect(doctor.locator("#chat-log")).to_be_empty()

    share = doctor.get_by_role("button", name=EN["share_screen"])
    sharing_label = patient.locator(".tile.remote .sharing-label")
    await expect(sharing_label).to_be_hidden()
    camera = await doctor.evaluate("window.__call.sentVideoLabels()")
    assert len(camera) == 1
    await share.click()
    stop = doctor.get_by_role("button", name=EN["stop_sharing"])
    await expect(stop).to_have_attribute("aria-pressed", "true")
    said = IT["peer_sharing"].replace("{name}", "Joe Smith")
    await expect(sharing_label).to_have_text(said)
    await expect(sharing_label).to_be_visible()
    sent = await doctor.evaluate("window.__call.sentVideoLabels()")
    assert len(sent) == 1
    assert sent != camera  # the screen, in place of the camera
    await video_from_everyone(patient, 1)
    assert await serious_violations(patient) == []
    await shots(doctor, "janus-in-call-sharing-en")
    await shots(patient, "janus-in-call-peer-sharing-it")

    # A page joining while the doctor shares is told too.
    await patient.reload()
    await patient.get_by_role("button", name=IT["join"]).click()
    await video_from_everyone(patient, 1)
    await expect(sharing_label).to_have_text(said)
    await expect(sharing_label).to_be_visible()

    await stop.click()
    await expect(share).to_be_visible()
    await expect(sharing_label).to_be_hidden()
    assert await doctor.evaluate("window.__call.sentVideoLabels()") == camera
    for context in contexts:
        await context.close()
    assert problems == []


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
    call: Callable[..., Awaitable[Pages]],
) -> None:
    _, doctor, patient, contexts, problems = await call(NO_CAMERA)
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
    for context in contexts:
        await context.close()
    assert problems == []
