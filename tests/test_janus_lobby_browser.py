"""The lobby and "end for everyone" on the janus page, in Debian's chromium through a real
Janus (the namespace of `tests/janus_server.py`, as tests/janus_pages.py runs it).

The patient's page waits with no Janus token (the shared lobby UI, its slow notice), the
doctor's page lists the knock and admits from the shared admission UI, then video flows both
ways through Janus; a declined page shows the refusal; the doctor's "End call for everyone"
ends the patient's page at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiohttp import ClientSession
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.helpers import (
    PATIENT,
    TEXTS,
    FrozenClock,
    teleconsultation,
)
from tests.janus_pages import (
    DOCTOR,
    NURSE,
    open_page,
    video_from_everyone,
)
from tests.janus_server import (
    RTP_PORTS,
)
from tests.test_call_page_browser import screenshot, serious_violations

EN, IT = TEXTS["en"], TEXTS["it"]


JANUS_LOBBY = {"CALL_PAGE_LOBBY_NOTICE_MS": "3000"}
"""The service's settings (`service`): the lobby on (the default), its slow notice after 3 s."""


@dataclass
class Call:
    doctor: Page
    patient: Page
    problems: list[str]


async def links(url: str, clock: FrozenClock) -> dict[str, str]:
    """A consultation of the doctor, the patient (it) and a nurse (en, below plus)."""
    start = clock.now + timedelta(minutes=5)
    people = [DOCTOR, PATIENT, NURSE]
    body = teleconsultation(
        3, *people, start=start.isoformat(), end=(start + timedelta(minutes=30)).isoformat()
    )
    found = {}
    async with ClientSession(url) as session:
        created = await session.post("/teleconsultation", json=body)
        assert created.status == 201
        room_id = (await created.json())["roomId"]
        for entry in people:
            user = entry["userExternalId"]
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            found[user] = (await answer.json())["accessLinkURL"]
    return found


async def joined(
    browser: Browser, link: str, language: str, problems: list[str]
) -> tuple[BrowserContext, Page]:
    """A page opened on its link (its policy bypassed for axe) that pressed **Join**."""
    context, page = await open_page(browser, link, problems, bypass_csp=True)
    join = page.get_by_role("button", name=TEXTS[language]["join"])
    await expect(join).to_be_enabled()
    await join.click()
    return context, page


async def desktop_and_phone(page: Page, name: str) -> None:
    """The page's screenshots as it is (a desktop's 1280 x 720), then on a 390 x 844 phone."""
    await screenshot(page, name)
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, f"{name}-390x844")


@pytest.fixture
async def waiting(
    service: str,
    namespaced_browser: Browser,
    clock: FrozenClock,
) -> AsyncIterator[Call]:
    """The patient joined first and waits; the doctor is in the call and sees the knock."""
    found = await links(service, clock)
    problems: list[str] = []
    patient_context, patient = await joined(namespaced_browser, found["patient-1"], "it", problems)
    await expect(patient.locator("#status")).to_have_text(IT["lobby_waiting"])
    doctor_context, doctor = await joined(namespaced_browser, found["doctor-1"], "en", problems)
    await expect(doctor.locator("#admission li .name")).to_have_text("Jane Doe")
    yield Call(doctor, patient, problems)
    for context in (patient_context, doctor_context):
        await context.close()


async def test_the_patient_waits_without_media_until_the_doctor_admits_them(
    waiting: Call,
) -> None:
    doctor, patient = waiting.doctor, waiting.patient
    await desktop_and_phone(patient, "janus-waiting-it")
    await screenshot(doctor, "janus-admission-en")
    assert await serious_violations(patient) == []
    assert await serious_violations(doctor) == []
    assert await patient.evaluate("window.__call.phase") == "waiting"
    assert await patient.evaluate("window.__call.peerIds()") == []
    assert await doctor.evaluate("window.__call.peerIds()") == []  # nothing published by them
    await expect(doctor.locator("#end-all")).to_be_visible()  # a plus page may end the call

    await doctor.get_by_role("button", name=f"{EN['lobby_admit']}: Jane Doe").click()
    await expect(doctor.locator("#admission")).to_be_hidden()
    for page in (patient, doctor):
        pairs = await video_from_everyone(page, 1)
        for pair in pairs.values():
            assert RTP_PORTS[0] <= pair["remotePort"] <= RTP_PORTS[1], pair
    await expect(patient.locator(".tile.remote .name")).to_have_text("Joe Smith")
    await expect(patient.locator("#end-all")).to_be_hidden()  # not a plus participant's
    assert waiting.problems == []


async def test_a_declined_patient_sees_the_refusal(waiting: Call) -> None:
    # Nobody let them in for CALL_PAGE_LOBBY_NOTICE_MS: they are told what to do.
    await expect(waiting.patient.locator("#status")).to_have_text(IT["lobby_slow"])
    await screenshot(waiting.patient, "janus-waiting-slow-it")
    await waiting.doctor.get_by_role("button", name=f"{EN['lobby_decline']}: Jane Doe").click()
    await expect(waiting.patient.locator("#status")).to_have_text(IT["declined"])
    await expect(waiting.patient.locator("#next")).to_have_text(IT["next_declined"])
    assert await waiting.patient.evaluate("window.__call.localTrackStates()") == []
    await expect(waiting.doctor.locator("#admission")).to_be_hidden()
    # The only error the browser logs: the refused request (403 declined) of its token.
    refused = "console: Failed to load resource: the server responded with a status of 403"
    assert waiting.problems == [f"{refused} (Forbidden)"]


async def test_the_doctor_ends_the_call_for_everyone(waiting: Call) -> None:
    doctor, patient = waiting.doctor, waiting.patient
    await doctor.get_by_role("button", name=f"{EN['lobby_admit']}: Jane Doe").click()
    await video_from_everyone(patient, 1)

    await doctor.get_by_role("button", name=EN["end_for_all"]).click()
    await doctor.get_by_role("button", name=EN["end_confirm"]).click()
    await expect(patient.locator("#status")).to_have_text(IT["ended"])
    await expect(doctor.locator("#status")).to_have_text(EN["ended"])
    assert await patient.evaluate("window.__call.peerIds()") == []
    # Opened again, the link shows the ended page.
    response = await patient.reload()
    assert response is not None
    assert response.status == 410
    assert waiting.problems == []


async def test_the_waiting_page_in_english_on_a_desktop_and_a_phone(
    service: str,
    namespaced_browser: Browser,
    clock: FrozenClock,
) -> None:
    found = await links(service, clock)
    problems: list[str] = []
    context, nurse = await joined(namespaced_browser, found["nurse-1"], "en", problems)
    await expect(nurse.locator("#status")).to_have_text(EN["lobby_waiting"])
    await desktop_and_phone(nurse, "janus-waiting-en")
    assert await serious_violations(nurse) == []
    await context.close()
    assert problems == []


@pytest.mark.parametrize("how", ["leave", "close"])
async def test_a_waiting_page_that_leaves_is_gone_from_the_doctors_list_at_once(
    waiting: Call, how: str
) -> None:
    doctor, patient = waiting.doctor, waiting.patient
    if how == "leave":
        await patient.get_by_role("button", name=IT["leave"]).click()
        await expect(patient.locator("#status")).to_have_text(IT["left"])
    else:  # the tab closed (its pagehide)
        await patient.close(run_before_unload=True)
    # Its beacon withdrew the knock: gone at the doctor's next read (every 2 s), well before
    # a knock nobody asks about is dropped (10 s).
    await expect(doctor.locator("#admission")).to_be_hidden(timeout=4000)
    assert await doctor.evaluate("window.__call.waitingToAdmit()") == []
    assert waiting.problems == []
