"""A janus call's page whose link is revoked, then whose participant is removed (issue 30):
Debian's chromium pages through a real Janus (`tests/janus_pages.py`'s fixtures).

Janus kicks the page (teleconsult took its token out of the room's `allowed` list and asked
for the kick); the page asks its info again and shows the ending it gets; the other page
sees it leave. The new link's page joins again, and the doctor's Remove control ends it. A page
that ignores its kick receives nothing more all the same: the room requires a subscription to
name its page's feed (`require_pvtid`), so Janus ends the page's subscriptions with it."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession
from playwright.async_api import Browser, expect

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

EN, IT = TEXTS["en"], TEXTS["it"]


async def test_a_kicked_page_shows_why_and_the_other_sees_it_leave(
    service: str,
    namespaced_browser: Browser,
    janus: JanusServer,
    clock: FrozenClock,
) -> None:
    room_id, links = await consultation(service, clock, DOCTOR, PATIENT)
    doctor_link, patient_link = links["doctor-1"], links["patient-1"]

    problems: list[str] = []
    doctor_context, doctor = await open_page(namespaced_browser, doctor_link, problems)
    patient_context, patient = await open_page(namespaced_browser, patient_link, problems)
    for page in (doctor, patient):
        await page.locator("#join").click()
    await expect(doctor.locator(".tile.remote")).to_have_count(1)
    await expect(patient.locator(".tile.remote")).to_have_count(1)

    async with ClientSession(service) as session:
        response = await session.delete(
            f"/teleconsultation/{room_id}/participants/patient-1/link",
            headers={"miauserid": "doctor-1"},
        )
        assert response.status == 204
        answer = await session.get(
            f"/teleconsultation/{room_id}", headers={"miauserid": "patient-1"}
        )
        new_link = (await answer.json())["accessLinkURL"]

    await expect(patient.locator("#status")).to_have_text(IT["revoked"])
    await expect(patient.locator("#app")).to_have_attribute("data-phase", "ended")
    await expect(doctor.locator(".tile.remote")).to_have_count(0)
    await expect(doctor.locator("#status")).to_have_text(EN["waiting"])

    # The new link joins again; the doctor removes them from their tile.
    assert new_link != patient_link
    await patient.goto(new_link)
    await patient.locator("#join").click()
    remove = doctor.get_by_role("button", name="Remove Jane Doe from the call")
    await remove.click()
    dialog = doctor.get_by_role("dialog", name="Remove Jane Doe from the call?")
    await dialog.get_by_role("button", name=EN["remove_confirm"]).click()

    await expect(patient.locator("#status")).to_have_text(IT["removed"])
    await expect(doctor.locator(".tile.remote")).to_have_count(0)
    async with ClientSession(service) as session:
        answer = await session.get(
            f"/teleconsultation/{room_id}", headers={"miauserid": "patient-1"}
        )
        assert (answer.status, (await answer.json())["code"]) == (403, "participant_blocked")
    for context in (doctor_context, patient_context):
        await context.close()
    # The kicked page's info answers 403 once removed: the browser reports that response.
    assert [p for p in problems if "status of 403" not in p] == []


DEAF_TO_KICKS = """(() => {
  const set = Object.getOwnPropertyDescriptor(WebSocket.prototype, "onmessage").set;
  Object.defineProperty(WebSocket.prototype, "onmessage", {
    configurable: true,
    set(handler) {
      set.call(this, (event) => {
        if (!String(event.data).includes('"kicked"')) handler(event);
      });
    },
  });
})();"""
"""A page that never hears Janus's kick: it would keep whatever Janus still sends it."""
FRAMES = (
    "async () => Object.values(await window.__call.videoFramesDecoded()).reduce((a, b) => a + b, 0)"
)


async def test_a_kicked_page_that_ignores_its_kick_receives_nothing_more(
    service: str,
    namespaced_browser: Browser,
    janus: JanusServer,
    clock: FrozenClock,
) -> None:
    room_id, links = await consultation(service, clock, DOCTOR, PATIENT)

    problems: list[str] = []
    doctor_context, doctor = await open_page(namespaced_browser, links["doctor-1"], problems)
    patient_context, patient = await open_page(
        namespaced_browser, links["patient-1"], problems, init_script=DEAF_TO_KICKS
    )
    for page in (doctor, patient):
        await page.locator("#join").click()
    await video_from_everyone(patient, 1)
    before = await patient.evaluate(FRAMES)
    await asyncio.sleep(1)
    assert await patient.evaluate(FRAMES) > before  # the doctor's video flows to the patient

    async with ClientSession(service) as session:
        response = await session.delete(
            f"/teleconsultation/{room_id}/participants/patient-1/link",
            headers={"miauserid": "doctor-1"},
        )
        assert response.status == 204
    await expect(doctor.locator(".tile.remote")).to_have_count(0)

    # The page heard nothing and stays "in the call", but Janus ended its subscription too
    # (the room requires each subscription's private_id): no frame comes any more.
    await asyncio.sleep(1)  # what was in flight when Janus hung up
    assert await patient.evaluate("window.__call.phase") == "in-call"
    stopped = await patient.evaluate(FRAMES)
    await asyncio.sleep(2)
    assert await patient.evaluate(FRAMES) == stopped
    for context in (doctor_context, patient_context):
        await context.close()
    assert problems == []
