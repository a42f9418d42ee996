"""What the tests of calls through the real Janus share (a pytest plugin: tests/conftest.py
registers it beside `tests.janus_server`): the service where the namespace's pages reach it
(`service`), Chromium inside the namespace (`namespaced_browser`), the people of the calls,
and opening a page, a consultation's links and waiting for video from everyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.helpers import (
    CHROMIUM_OFFLINE,
    AppServer,
    FrozenClock,
    person,
    teleconsultation,
)
from tests.janus_server import JanusServer, Namespace, chromium_wrapper
from tests.test_janus import real_now

TIMEOUT_MS = 20_000
DOCTOR = person("doctor-1", ["doctor"], "Joe Smith", "en")
NURSE = person("nurse-1", ["patient"], "Ann Lee", "en")
FAMILY = person("family-1", ["patient"], "Bo Doe", "en")
INTERPRETER = person("interpreter-1", ["patient"], "Cy Roe", "en")


@pytest.fixture
async def service(
    janus: JanusServer,
    events_port: int,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    service_config: dict[str, Any] | None,
    request: pytest.FixtureRequest,
) -> AsyncIterator[str]:
    """The service on the host's end of the veth pair, where pages in the namespace reach it;
    with the test's `service_config` (the default one unless a module overrides it) and no
    lobby unless the test's module says otherwise (its `JANUS_LOBBY` settings)."""
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
