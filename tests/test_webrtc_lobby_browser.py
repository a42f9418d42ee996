"""The lobby in real browsers, on two replicas (one store): the patient gets no remote
media until the doctor admits them, then does; a declined patient sees the refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.helpers import (
    LOBBY,
    PATIENT,
    STARTED,
    TEXTS,
    AppServing,
    FrozenClock,
    free_port,
    path_of,
    teleconsultation,
)
from tests.test_call_page_browser import screenshot
from tests.test_webrtc_browser import CONNECTED, DOCTOR, frames_decoded, new_page
from tests.test_webrtc_browser import chromium_args as chromium_args  # the fake camera

EN, IT = TEXTS["en"], TEXTS["it"]


@dataclass
class Lobby:
    doctor: Page
    patient: Page
    problems: list[str]


@pytest.fixture
async def lobby(
    app_server: AppServing,
    build_app: Callable[..., web.Application],
    clock: FrozenClock,
    browser: Browser,
) -> AsyncIterator[Lobby]:
    """The patient (second replica) joined first and waits; the doctor (first) is in."""
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    settings = {
        **LOBBY,
        "WEBRTC_PUBLIC_URL": api,
        "WEBRTC_HEARTBEAT_MS": "200",
        "CALL_PAGE_LOBBY_NOTICE_MS": "3000",
    }
    await app_server(build_app(**settings), port=port)
    second = await app_server(build_app(**settings))
    async with ClientSession(api) as session:
        created = await session.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
        room_id = (await created.json())["roomId"]
        clock.now = STARTED
        links = {}
        for user in ("doctor-1", "patient-1"):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links[user] = (await answer.json())["accessLinkURL"]
    problems: list[str] = []
    contexts: list[BrowserContext] = []
    doctor_context, doctor = await new_page(browser, problems)
    patient_context, patient = await new_page(browser, problems)
    contexts += [doctor_context, patient_context]
    await patient.goto(str(second.make_url(path_of(links["patient-1"]))))
    await patient.get_by_role("button", name=IT["join"]).click()
    await expect(patient.locator("#status")).to_have_text(IT["lobby_waiting"])
    await screenshot(patient, "lobby-waiting-it")
    await doctor.goto(links["doctor-1"])
    await doctor.get_by_role("button", name=EN["join"]).click()
    await expect(doctor.locator("#admission li .name")).to_have_text("Jane Doe")
    await screenshot(doctor, "lobby-admission-en")
    yield Lobby(doctor, patient, problems)
    for context in contexts:
        await context.close()


async def test_the_patient_gets_media_only_once_admitted(lobby: Lobby) -> None:
    doctor, patient = lobby.doctor, lobby.patient
    assert await patient.evaluate("window.__call.peerIds()") == []
    assert await doctor.evaluate("window.__call.peerIds()") == []  # no media either way
    await expect(patient.locator(".tile.remote")).to_have_count(0)

    await doctor.get_by_role("button", name=f"{EN['lobby_admit']}: Jane Doe").click()
    await doctor.wait_for_function(CONNECTED, arg=1, polling=100)
    await patient.wait_for_function(CONNECTED, arg=1, polling=100)
    await frames_decoded(patient, {})
    await expect(doctor.locator("#admission")).to_be_hidden()
    await expect(patient.locator(".tile.remote .name")).to_have_text("Joe Smith")
    await screenshot(patient, "lobby-admitted-it")
    assert lobby.problems == []


async def test_a_declined_patient_sees_the_refusal(lobby: Lobby) -> None:
    # Nobody let them in for CALL_PAGE_LOBBY_NOTICE_MS: they are told what to do.
    await expect(lobby.patient.locator("#status")).to_have_text(IT["lobby_slow"])
    await screenshot(lobby.patient, "lobby-slow-it")
    await lobby.doctor.get_by_role("button", name=f"{EN['lobby_decline']}: Jane Doe").click()
    await expect(lobby.patient.locator("#status")).to_have_text(IT["declined"])
    await expect(lobby.patient.locator("#next")).to_have_text(IT["next_declined"])
    await screenshot(lobby.patient, "lobby-declined-it")
    assert await lobby.patient.evaluate("window.__call.localTrackStates()") == []
    await expect(lobby.doctor.locator("#admission")).to_be_hidden()
    assert lobby.problems == []
