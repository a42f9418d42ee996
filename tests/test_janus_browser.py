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

from aiohttp import ClientSession
from playwright.async_api import Browser, expect

from tests.helpers import PATIENT, TEXTS, FrozenClock
from tests.janus_pages import (
    DOCTOR,
    FAMILY,
    INTERPRETER,
    NURSE,
    consultation,
    open_page,
    video_from_everyone,
)
from tests.janus_server import RTP_PORTS, JanusServer

NEW_FEEDS = """(old) => {
  const now = window.__call.peerIds();
  return now.length === 2 && now.every((id) => !old.includes(id));
}"""
"""Every feed the page receives is a new one (Janus gives a feed a new id when it comes back)."""


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
