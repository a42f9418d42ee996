"""The checks before the call in Debian's chromium (Playwright), with two fake cameras: the
lobby's device choice is the track sent and is remembered; the check page that needs no
link runs its checks in two languages and at phone size, its STUN server answering (a
small one of ours, on loopback); a browser without camera permission shows what to do
and a retry. axe-core checks both pages; screenshots go to build/screenshots/.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.helpers import (
    STARTED,
    TEXTS,
    WEBRTC,
    AppServing,
    FrozenClock,
    free_port,
    person,
    teleconsultation,
)
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import CHROMIUM_ARGS

TWO_CAMERAS = [
    "--use-fake-device-for-media-stream=device-count=2",
    *[arg for arg in CHROMIUM_ARGS if not arg.startswith("--use-fake-device")],
]
TIMEOUT_MS = 15_000
DOCTOR = person("doctor-1", ["doctor"], "Joe Smith", "en")
PATIENT = person("patient-1", ["patient"], "Jane Doe", "en")
MAPPED = (203, 0, 113, 7)
"""The public address our STUN server reports (TEST-NET-3): never one of the machine's."""


@pytest.fixture
def chromium_args() -> list[str]:
    return TWO_CAMERAS


class Stun(asyncio.DatagramProtocol):
    """A STUN server answering binding requests with MAPPED (RFC 5389's XOR-MAPPED-ADDRESS)."""

    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 20 or data[:2] != b"\x00\x01":
            return
        cookie, transaction = data[4:8], data[8:20]
        address = bytes(a ^ b for a, b in zip(MAPPED, cookie, strict=True))
        attribute = struct.pack("!HHBBH", 0x0020, 8, 0, 1, 40000 ^ 0x2112) + address
        self.transport.sendto(
            struct.pack("!HH", 0x0101, len(attribute)) + cookie + transaction + attribute, addr
        )


@dataclass
class Site:
    api: str
    clock: FrozenClock

    async def links(self) -> dict[str, str]:
        """A new teleconsultation's links, by user."""
        self.clock.now = STARTED - timedelta(hours=1)
        async with ClientSession(self.api) as session:
            created = await session.post(
                "/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT)
            )
            room_id = (await created.json())["roomId"]
            self.clock.now = STARTED
            found = {}
            for user in ("doctor-1", "patient-1"):
                answer = await session.get(
                    f"/teleconsultation/{room_id}", headers={"miauserid": user}
                )
                found[user] = (await answer.json())["accessLinkURL"]
            return found


@pytest.fixture
async def site(
    app_server: AppServing, build_app: Callable[..., web.Application], clock: FrozenClock
) -> AsyncIterator[Site]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Stun, local_addr=("127.0.0.1", 0))
    stun_port = transport.get_extra_info("sockname")[1]
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    settings = {
        **WEBRTC,
        "WEBRTC_PUBLIC_URL": api,
        "WEBRTC_STUN_URLS": f"stun:127.0.0.1:{stun_port}",
    }
    await app_server(build_app(**settings), port=port)
    yield Site(api, clock)
    transport.close()


async def opened(browser: Browser, locale: str = "en-GB", **options: object) -> Page:
    context = await browser.new_context(locale=locale, bypass_csp=True, **options)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def checked(page: Page, language: str) -> None:
    """The preview plays and the connection check has said what it found."""
    await page.wait_for_function("() => document.getElementById('self-video').videoWidth > 0")
    await expect(page.locator("#network-result")).not_to_have_text(
        TEXTS[language]["check_running"], timeout=TIMEOUT_MS
    )


async def test_the_camera_chosen_in_the_lobby_is_sent_and_remembered(
    site: Site, browser: Browser
) -> None:
    links = await site.links()
    patient = await opened(browser, permissions=["camera", "microphone"])
    doctor = await opened(browser, permissions=["camera", "microphone"])
    said = TEXTS["en"]

    await patient.goto(links["patient-1"])
    await checked(patient, "en")
    camera = patient.get_by_label(said["camera"], exact=True)
    assert await camera.locator("option").count() == 2
    second = await camera.locator("option").nth(1).get_attribute("value")
    assert second
    await camera.select_option(second)
    await patient.wait_for_function(
        "(id) => window.__call.precheck && document.getElementById('self-video').srcObject"
        "?.getVideoTracks()[0]?.getSettings().deviceId === id",
        arg=second,
    )
    await expect(patient.locator("#network-result")).to_have_text(said["check_ok"])
    await patient.get_by_role("button", name=said["test_speaker"]).click()
    await patient.wait_for_function("() => window.__call.precheck.soundsPlayed === 1")
    await patient.wait_for_function("() => window.__call.precheck.micPeak > 0")
    assert await patient.get_by_label(said["speaker"], exact=True).locator("option").count() >= 1
    assert await serious_violations(patient) == [], "lobby with its checks"
    await screenshot(patient, "precheck-lobby-en")

    await doctor.goto(links["doctor-1"])
    await doctor.get_by_role("button", name=said["join"]).click()
    await expect(doctor.locator("#status")).to_have_text(said["waiting"])
    await patient.get_by_role("button", name=said["join"]).click()
    await expect(patient.locator("#precheck")).to_be_hidden()
    await patient.wait_for_function(
        "(id) => { const sent = window.__call.sentVideoDeviceIds();"
        " return sent.length === 1 && sent[0] === id; }",
        arg=second,
    )

    await patient.get_by_role("button", name=said["leave"]).click()
    await patient.reload()  # the next call, in this browser: the same camera
    await checked(patient, "en")
    await expect(patient.get_by_label(said["camera"], exact=True)).to_have_value(second)
    for page in (patient, doctor):
        await page.context.close()


@pytest.mark.parametrize(
    ("locale", "language", "viewport"),
    [("en-GB", "en", None), ("it-IT", "it", None), ("it-IT", "it", (390, 844))],
)
async def test_the_check_page_needs_no_link_and_runs_its_checks(
    site: Site, browser: Browser, locale: str, language: str, viewport: tuple[int, int] | None
) -> None:
    phone = (
        {"viewport": {"width": viewport[0], "height": viewport[1]}, "is_mobile": True}
        if viewport
        else {}
    )
    page = await opened(browser, locale, permissions=["camera", "microphone"], **phone)
    said = TEXTS[language]

    await page.goto(f"{site.api}/webrtc/check")
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await expect(page.get_by_role("heading", level=1)).to_have_text(said["check_title"])
    await checked(page, language)
    await expect(page.locator("#network-result")).to_have_text(said["check_ok"])
    assert await page.evaluate("() => window.__precheck.candidates.srflx") > 0
    assert await page.get_by_label(said["camera"], exact=True).locator("option").count() == 2
    await expect(page.locator("#media-trouble")).to_be_hidden()
    assert await serious_violations(page) == [], "check page"
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    await screenshot(page, f"check-{language}" + ("-phone" if viewport else ""))
    await page.context.close()


async def test_without_camera_permission_the_page_says_what_to_do_and_retries(
    site: Site, chromium: str
) -> None:
    # No --use-fake-ui-for-media-stream: its prompt accepts whatever the context allows.
    args = [arg for arg in TWO_CAMERAS if arg != "--use-fake-ui-for-media-stream"]
    said = TEXTS["en"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=args)
        page = await opened(browser)  # no permissions: the prompt is refused

        await page.goto(f"{site.api}/webrtc/check")
        await expect(page.locator("#media-problem")).to_have_text(said["media_denied"])
        await expect(page.locator("#media-help")).to_have_text(said["help_denied_chromium"])
        await expect(page.locator("#status, #network-result").last).not_to_be_empty()
        assert await serious_violations(page) == [], "permission denied"
        await screenshot(page, "check-denied-en")

        await page.context.grant_permissions(["camera", "microphone"], origin=site.api)
        await page.get_by_role("button", name=said["retry"]).click()
        await expect(page.locator("#media-trouble")).to_be_hidden()
        await page.wait_for_function("() => document.getElementById('self-video').videoWidth > 0")
        await browser.close()
