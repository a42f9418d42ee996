"""The chat and screen sharing of a janus call, through a real Janus (`test_janus_browser.py`'s
fixtures): Debian's chromium pages in the test's network namespace.

The chat goes over the videoroom's data channels: each page publishes one, Janus relays it to
the page's subscribers. Janus does not check who sends on it, so the receiving page shows a
chat only from a participant whose level has the tool. A shared screen replaces the camera on
the published video and its stream description says so: the other page's tile says it, a
page joining meanwhile too. A level without a tool gets no control for it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.helpers import PATIENT, TEXTS, FrozenClock
from tests.janus_server import (  # noqa: F401 - the fixtures, found by their names
    JanusServer,
    events_port_fixture,
    janus_fixture,
    janus_namespace_fixture,
)
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_janus_browser import (  # noqa: F401 - the fixtures, found by their names
    DOCTOR,
    consultation,
    namespaced_browser,
    open_page,
    service,
    service_config,
    video_from_everyone,
)
from tests.test_webrtc_tools_browser import chat_both_ways

EN, IT = TEXTS["en"], TEXTS["it"]
PATIENTS_WITHOUT_TOOLS: dict[str, Any] = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"file_upload": True}},
        "plus": {"groups": ["doctor"]},
    }
}
"""Patients with neither the chat nor screen sharing; doctors with every tool."""
Pages = tuple[dict[str, str], Page, Page, list[BrowserContext], list[str]]


async def in_call(url: str, browser: Browser, clock: FrozenClock) -> Pages:
    """The doctor's (English) and the patient's (Italian) pages in one call, each receiving
    the other's video through Janus; axe-core may be added to them."""
    links = (await consultation(url, clock, DOCTOR, PATIENT))[1]
    problems: list[str] = []
    contexts, pages = [], []
    for user in ("doctor-1", "patient-1"):
        context, page = await open_page(browser, links[user], problems, bypass_csp=True)
        contexts.append(context)
        pages.append(page)
        await page.locator("#join").click()
    for page in pages:
        await video_from_everyone(page, 1)
    return links, pages[0], pages[1], contexts, problems


@pytest.fixture
async def call(
    service: str,  # noqa: F811 - the imported fixture
    namespaced_browser: Browser,  # noqa: F811 - the imported fixture
    janus: JanusServer,
    clock: FrozenClock,
) -> Callable[[], Awaitable[Pages]]:
    return lambda: in_call(service, namespaced_browser, clock)


async def shots(page: Page, name: str) -> None:
    """The page on a desktop and on a phone (390x844)."""
    await screenshot(page, name)
    size = page.viewport_size
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, f"{name}-phone")
    assert size is not None
    await page.set_viewport_size(size)


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
