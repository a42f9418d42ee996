"""The call page as a patient meets it, in Debian's chromium (Playwright): each language,
the fallbacks, framing by an allowed origin (and by no other), axe-core's accessibility
check, a phone's viewport; screenshots saved in build/screenshots/ for people to look at.

axe-core comes from the npm registry at the version tests/axe pins (`make test` installs it
into .venv/axe); it is injected into a context that bypasses the page's CSP, the only
place a script of anyone else runs in the page.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, Page, expect

from teleconsult.callpage.catalogs import BUILT_IN
from teleconsult.configuration.service_config import DEFAULT_CONFIG
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
from tests.test_webrtc_browser import CHROMIUM_ARGS

AXE = Path(sys.prefix) / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).parents[1] / "build" / "screenshots"
TIMEOUT_MS = 15_000
DOCTOR = person("doctor-1", ["doctor"], "Joe Smith", "en")
LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32" viewBox="0 0 120 32">'
    '<rect width="32" height="32" rx="8" fill="#0a7d6e"/>'
    '<path d="M10 16h12M16 10v12" stroke="#fff" stroke-width="4"/>'
    '<text x="40" y="22" font-family="sans-serif" font-size="14" fill="#0a7d6e">Clinic</text>'
    "</svg>"
)
FRAMER = """<!doctype html><html lang="en"><head><title>Portal</title></head><body>
<iframe title="Video consultation" src="{link}" width="800" height="640"
 allow="camera; microphone; fullscreen; display-capture"></iframe></body></html>"""


@pytest.fixture
def chromium_args() -> list[str]:
    return CHROMIUM_ARGS


@dataclass
class Site:
    """A webrtc app whose page may be framed by `portal` and shows `portal`'s logo."""

    api: str
    portal: str
    other_portal: str
    clock: FrozenClock
    framed: dict[str, str]
    """Each framing page's link, by path on the portal."""

    async def link(self, language: str | None, user: str = "patient-1") -> tuple[str, str]:
        """A new teleconsultation's link for a patient speaking `language`: (room id, link)."""
        patient = person(user, ["patient"], "Jane Doe", language)
        self.clock.now = STARTED - timedelta(hours=1)
        async with ClientSession(self.api) as session:
            created = await session.post(
                "/teleconsultation", json=teleconsultation(2, DOCTOR, patient)
            )
            room_id = (await created.json())["roomId"]
            self.clock.now = STARTED
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            return room_id, (await answer.json())["accessLinkURL"]

    async def cancel(self, room_id: str) -> None:
        async with ClientSession(self.api) as session:
            assert (await session.delete(f"/teleconsultation/{room_id}")).status == 204


@pytest.fixture
async def site(
    app_server: AppServing, build_app: Callable[..., web.Application], clock: FrozenClock
) -> Site:
    portal_port, other_port, port = free_port(), free_port(), free_port()
    portal = f"http://127.0.0.1:{portal_port}"
    framed: dict[str, str] = {}

    async def logo(_: web.Request) -> web.Response:
        return web.Response(text=LOGO, content_type="image/svg+xml")

    async def framing(request: web.Request) -> web.Response:
        link = framed[request.path]
        return web.Response(text=FRAMER.format(link=link), content_type="text/html")

    portal_app = web.Application()
    portal_app.router.add_get("/logo.svg", logo)
    portal_app.router.add_get("/{name}", framing)
    await app_server(portal_app, port=portal_port)
    await app_server(portal_app, port=other_port)
    config = {
        **DEFAULT_CONFIG,
        "theme": {"light": {"primaryColor": "#0a6e62", "accentColor": "#0a7d6e"}},
        "companyLogo": {"url": f"{portal}/logo.svg"},
    }
    api = f"http://127.0.0.1:{port}"
    settings = {**WEBRTC, "WEBRTC_PUBLIC_URL": api, "CALL_PAGE_FRAME_ANCESTORS": portal}
    await app_server(build_app(config=config, **settings), port=port)
    # localhost is another origin than 127.0.0.1: a portal the setting does not list
    return Site(api, portal, f"http://localhost:{other_port}", clock, framed)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page with a fake camera, English-speaking, whose CSP lets axe-core in."""
    context = await browser.new_context(
        permissions=["camera", "microphone"], locale="en-GB", bypass_csp=True
    )
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    await context.close()


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def in_lobby(page: Page, link: str, language: str) -> None:
    await page.goto(link)
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await expect(page.get_by_role("button", name=TEXTS[language]["join"])).to_be_enabled()
    await page.wait_for_function("() => document.getElementById('self-video').videoWidth > 0")


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of serious or critical impact (WCAG 2.1 A and AA rules), once
    the page's colour transitions have ended: a contrast read mid-transition (just after the
    colour scheme changed) is neither the old colours nor the new."""
    assert AXE.exists(), "install axe-core with `make .venv/axe/.installed`"
    await page.wait_for_function(
        "document.getAnimations().every((a) => !(a instanceof CSSTransition)"
        " || a.playState !== 'running')"
    )
    await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const result = await axe.run(document, {
            runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
          });
          return result.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.html) }));
        }"""
    )
    return found


async def test_each_language_renders_in_that_language(site: Site, page: Page) -> None:
    for language in sorted(BUILT_IN):
        _, link = await site.link(language)
        await in_lobby(page, link, language)
        await expect(page.locator("#title")).to_have_text(TEXTS[language]["title"])
        assert await page.title() == TEXTS[language]["title"]
        await screenshot(page, f"call-lobby-{language}")


async def test_a_regional_or_unknown_language_falls_back(site: Site, browser: Browser) -> None:
    _, swiss = await site.link("de-CH")
    _, unknown = await site.link("ja")
    _, unset = await site.link(None)
    for locale, link, language in [
        ("en-GB", swiss, "de"),  # the participant's language, its region aside
        ("fr-FR", unknown, "fr"),  # no catalog for ja: the browser's language
        ("ja-JP", unknown, "en"),  # nor for the browser's: CALL_PAGE_DEFAULT_LANGUAGE
        ("pl-PL", unset, "pl"),  # no language given: the browser's
    ]:
        context = await browser.new_context(permissions=["camera", "microphone"], locale=locale)
        opened = await context.new_page()
        opened.set_default_timeout(TIMEOUT_MS)
        await in_lobby(opened, link, language)
        await context.close()


async def test_the_page_works_framed_by_an_allowed_origin_only(site: Site, page: Page) -> None:
    _, link = await site.link("en")
    site.framed["/allowed"] = link
    site.framed["/other"] = link

    await page.goto(f"{site.portal}/allowed")
    frame = page.frame_locator("iframe")
    await expect(frame.get_by_role("button", name="Join")).to_be_enabled()
    await frame.get_by_role("button", name="Join").click()
    await expect(frame.locator("#status")).to_have_text(TEXTS["en"]["waiting"])
    await expect(frame.get_by_role("button", name=TEXTS["en"]["leave"])).to_be_visible()
    await screenshot(page, "call-framed-en")

    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    await page.goto(f"{site.other_portal}/other")
    await page.wait_for_timeout(1000)
    [framed] = [f for f in page.frames if f is not page.main_frame]
    assert not framed.url.startswith(site.api), framed.url
    assert await framed.locator("#join").count() == 0
    assert any("frame-ancestors" in text for text in refused), refused


async def test_the_call_page_and_the_ending_pages_pass_axe(site: Site, browser: Browser) -> None:
    for language, locale in (("en", "en-GB"), ("it", "it-IT")):
        context = await browser.new_context(
            permissions=["camera", "microphone"], locale=locale, bypass_csp=True
        )
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        said = TEXTS[language]
        room_id, link = await site.link(language)

        await in_lobby(page, link, language)
        assert await serious_violations(page) == [], "lobby"
        await page.get_by_role("button", name=said["join"]).click()
        await expect(page.locator("#status")).to_have_text(said["waiting"])
        assert await serious_violations(page) == [], "in the call"
        await page.get_by_role("button", name=said["leave"]).click()
        await expect(page.locator("#status")).to_have_text(said["left"])
        await expect(page.locator("#next")).to_have_text(said["next_left"])
        await expect(page.get_by_role("button", name=said["join_again"])).to_be_focused()
        assert await serious_violations(page) == [], "left"
        await screenshot(page, f"call-left-{language}")

        site.clock.advance(seconds=-1)  # before the link opens
        response = await page.goto(link)
        assert response is not None
        assert response.status == 403
        await expect(page.locator("#refused")).to_have_text(said["not_open"])
        await expect(page.locator("#next time")).not_to_contain_text("UTC")  # shown by Intl
        assert await serious_violations(page) == [], "not open"
        await screenshot(page, f"ending-not-open-{language}")
        site.clock.advance(seconds=1)

        for why, status in (("cancelled", 410), ("invalid", 404), ("expired", 410)):
            if why == "cancelled":
                await site.cancel(room_id)
                opened = link
            elif why == "invalid":
                opened = link[:-4] + "AAAA"
            else:
                opened = (await site.link(language, "patient-2"))[1]
                site.clock.advance(hours=25)
            response = await page.goto(opened)
            assert response is not None
            assert response.status == status
            await expect(page.locator("#refused")).to_have_text(said[why])
            await expect(page.locator("#next")).to_have_text(said[f"next_{why}"])
            assert await serious_violations(page) == [], why
            await screenshot(page, f"ending-{why}-{language}")
        await context.close()


async def test_the_dark_colours_follow_the_browsers_scheme(site: Site, browser: Browser) -> None:
    _, link = await site.link("en")
    backgrounds = {"light": "rgb(246, 247, 249)", "dark": "rgb(21, 24, 28)"}  # --bg
    for scheme in ("light", "dark"):
        context = await browser.new_context(color_scheme=scheme)
        page = await context.new_page()
        for url in (link, f"{site.api}/webrtc/check"):
            await page.goto(url)
            await expect(page.locator("body")).to_have_css("background-color", backgrounds[scheme])
        await context.close()


async def test_at_phone_size_the_controls_fit_with_no_horizontal_scroll(
    site: Site, browser: Browser
) -> None:
    for scheme in ("light", "dark"):
        context = await browser.new_context(
            permissions=["camera", "microphone"],
            locale="it-IT",
            viewport={"width": 390, "height": 844},
            color_scheme=scheme,
            is_mobile=True,
            has_touch=True,
        )
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        _, link = await site.link("it")
        await in_lobby(page, link, "it")
        await page.get_by_role("button", name="Entra").click()
        await expect(page.locator("#status")).to_have_text(TEXTS["it"]["waiting"])
        for name in ("camera_off", "mic_off", "leave"):
            await expect(page.get_by_role("button", name=TEXTS["it"][name])).to_be_in_viewport()
        widths = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], widths
        await screenshot(page, f"call-phone-it-{scheme}")
        await context.close()
