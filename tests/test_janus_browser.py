"""Real calls through a real Janus: Debian's chromium pages, in the test's network namespace.

Janus gathers no candidate on loopback, so it runs in a namespace (`tests/janus_server.py`)
and so does Chromium (a wrapper executable runs it there); the service listens on the
host's end of the veth pair. The page's origin is plain http there, which Chromium is told
to treat as secure (the camera is given to secure pages only). The fake camera and
microphone stand in for devices. Each page publishes once and receives the others' video
through Janus: every selected candidate pair's remote port is one of Janus's RTP ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.helpers import (
    CHROMIUM_OFFLINE,
    PATIENT,
    TEXTS,
    AppServer,
    FrozenClock,
    person,
    teleconsultation,
)
from tests.janus_server import (
    RTP_PORTS,
    JanusServer,
    Namespace,
    chromium_wrapper,
)
from tests.test_janus import CONFIG, real_now

TIMEOUT_MS = 20_000
NEW_FEEDS = """(old) => {
  const now = window.__call.peerIds();
  return now.length === 2 && now.every((id) => !old.includes(id));
}"""
"""Every feed the page receives is a new one (Janus gives a feed a new id when it comes back)."""
DOCTOR = person("doctor-1", ["doctor"], "Joe Smith", "en")
NURSE = person("nurse-1", ["patient"], "Ann Lee", "en")
FAMILY = person("family-1", ["patient"], "Bo Doe", "en")
INTERPRETER = person("interpreter-1", ["patient"], "Cy Roe", "en")


@pytest.fixture
def service_config() -> dict[str, Any]:
    """The service configuration (its `privileges`); a module may override it."""
    return CONFIG


@pytest.fixture
async def service(
    janus: JanusServer,
    events_port: int,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    service_config: dict[str, Any],
    request: pytest.FixtureRequest,
) -> AsyncIterator[str]:
    """The service on the host's end of the veth pair, where pages in the namespace reach it;
    with no lobby unless the test's module says otherwise (its `JANUS_LOBBY` settings)."""
    lobby = getattr(request.module, "JANUS_LOBBY", {"CALL_PAGE_LOBBY": "false"})
    clock.now = real_now()
    address = janus.namespace.host_address
    url = f"http://{address}:{events_port}"
    app = build_app(
        service_config,
        **janus.environ(
            JANUS_ALLOW_PLAIN_HTTP="true",
            JANUS_PAGE_URL=url,
            IMMUTABLE_PERIOD_MS=str(600_000),
            **lobby,
        ),
    )
    server = AppServer(app, host=address, port=events_port)
    await server.start_server()
    yield url
    await server.close()


@pytest.fixture
async def namespaced_browser(
    janus_namespace: Namespace, service: str, tmp_path: Path
) -> AsyncIterator[Browser]:
    """Chromium inside the namespace, treating the service's http origin as secure."""
    executable = chromium_wrapper(tmp_path, janus_namespace, "/usr/bin/chromium")
    args = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--unsafely-treat-insecure-origin-as-secure={service}",
        "--auto-select-desktop-capture-source=Entire screen",  # getDisplayMedia, no prompt
        *CHROMIUM_OFFLINE,
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        yield browser
        await browser.close()


async def open_page(
    browser: Browser,
    link: str,
    problems: list[str],
    *,
    bypass_csp: bool = False,
    init_script: str | None = None,
) -> tuple[BrowserContext, Page]:
    """A page of its own, whose errors the test collects; `bypass_csp` lets a test add
    axe-core, `init_script` runs before the page's own scripts."""
    context = await browser.new_context(permissions=["camera", "microphone"], bypass_csp=bypass_csp)
    if init_script is not None:
        await context.add_init_script(init_script)
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "status of 410" not in message.text
            else None
        ),
    )
    response = await page.goto(link)
    assert response is not None
    assert response.status == 200
    return context, page


async def consultation(
    service: str, clock: FrozenClock, *people: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """A consultation of `people` from five minutes on, for half an hour: its id and each
    participant's link."""
    start = clock.now + timedelta(minutes=5)
    end = start + timedelta(minutes=30)
    body = teleconsultation(len(people), *people, start=start.isoformat(), end=end.isoformat())
    async with ClientSession(service) as session:
        created = await session.post("/teleconsultation", json=body)
        assert created.status == 201
        room_id: str = (await created.json())["roomId"]
        links = {}
        for entry in people:
            user = entry["userExternalId"]
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            assert answer.status == 200
            links[user] = (await answer.json())["accessLinkURL"]
    return room_id, links


async def video_from_everyone(page: Page, others: int) -> dict[str, Any]:
    """Poll until the page decoded video from `others` feeds: their selected pairs."""
    frames: dict[str, int] = {}
    for _ in range(TIMEOUT_MS // 100):
        frames = await page.evaluate("window.__call.videoFramesDecoded()")
        if len(frames) == others and all(count >= 10 for count in frames.values()):
            pairs: dict[str, Any] = await page.evaluate("window.__call.selectedCandidatePairs()")
            return pairs
        await asyncio.sleep(0.1)
    raise AssertionError(f"no video from {others} feeds: {frames}")


async def test_three_of_five_receive_each_other_through_janus_across_a_restart_until_cancelled(
    service: str, namespaced_browser: Browser, janus: JanusServer, clock: FrozenClock
) -> None:
    people = [DOCTOR, PATIENT, NURSE, FAMILY, INTERPRETER]  # past the mesh's four
    room_id, links = await consultation(service, clock, *people)
    async with ClientSession(service) as session:
        for user in ("family-1", "interpreter-1"):  # the two others' links work too
            opened = await session.get(links[user])
            assert opened.status == 200

    problems: list[str] = []
    pages = []
    for user in ("doctor-1", "patient-1", "nurse-1"):
        context, page = await open_page(namespaced_browser, links[user], problems)
        pages.append((context, page))
        join = page.locator("#join")
        await expect(join).to_be_enabled()
        await join.click()

    for _, page in pages:
        pairs = await video_from_everyone(page, 2)
        assert len(pairs) == 2
        for pair in pairs.values():
            assert RTP_PORTS[0] <= pair["remotePort"] <= RTP_PORTS[1], pair
    async with ClientSession(service) as session:  # who publishes, named from Janus's events
        for _ in range(60):  # GET's details are kept 10 s (DETAILS_TTL_SECONDS)
            answer = await session.get(
                f"/teleconsultation/{room_id}", headers={"miauserid": "nurse-1"}
            )
            details = (await answer.json())["details"]
            if details["status"] == "ongoing":
                break
            await asyncio.sleep(0.25)
        assert sorted(details["connected"]) == ["doctor-1", "nurse-1", "patient-1"]
    await expect(pages[0][1].locator("#leave")).to_be_visible()  # in the call, the doctor...
    await expect(pages[0][1].locator("#end-all")).to_be_visible()  # ...may end it for all

    # Janus restarts (its rooms made through the API are gone): the pages reconnect, the
    # room is made again under its id, and video flows again.
    feeds = [await page.evaluate("window.__call.peerIds()") for _, page in pages]
    await janus.restart()
    for (_, page), old in zip(pages, feeds, strict=True):
        await page.wait_for_function(NEW_FEEDS, arg=old, polling=100)
        await video_from_everyone(page, 2)

    async with ClientSession(service) as session:
        cancelled = await session.delete(f"/teleconsultation/{room_id}")
        assert cancelled.status == 204
    # Janus destroyed the room: every page is told the call ended, in its language.
    for (_, page), language in zip(pages, ("en", "it", "en"), strict=True):
        await expect(page.locator("#status")).to_have_text(TEXTS[language]["ended"])
    for context, _ in pages:
        await context.close()
    assert problems == []
