"""Revocation and removal in real browsers (two replicas, one store): a page whose link is
revoked leaves the call and says so, and the other page sees it leave; a plus participant
removes someone from their tile, after confirming in a dialog."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from playwright.async_api import expect

from tests.helpers import TEXTS
from tests.test_call_page_browser import screenshot, serious_violations
from tests.test_webrtc_browser import Call
from tests.test_webrtc_browser import call as call  # the two pages in the call
from tests.test_webrtc_browser import chromium_args as chromium_args  # the fake camera

EN, IT = TEXTS["en"], TEXTS["it"]


@pytest.fixture
def bypass_csp() -> bool:
    return True  # axe-core is added to the pages


async def test_a_page_whose_link_is_revoked_leaves_and_the_other_sees_it_go(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    async with ClientSession(call.api) as session:
        response = await session.delete(
            f"/teleconsultation/{call.room_id}/participants/patient-1/link",
            headers={"miauserid": "doctor-1"},
        )
        assert response.status == 204

    await expect(patient.locator("#status")).to_have_text(IT["revoked"])
    await expect(patient.locator("#next")).to_have_text(IT["next_revoked"])
    await expect(patient.locator("#app")).to_have_attribute("data-phase", "ended")
    assert await patient.evaluate("window.__call.localTrackStates()") == []  # devices freed
    await expect(doctor.locator(".tile.remote")).to_have_count(0)
    await expect(doctor.locator("#status")).to_have_text(EN["waiting"])
    await screenshot(patient, "revoked-it")
    await patient.set_viewport_size({"width": 390, "height": 844})
    await screenshot(patient, "revoked-it-phone")
    await patient.reload()  # the link itself now opens the revoked page
    await expect(patient.locator("#refused")).to_have_text(IT["revoked"])
    assert call.problems == []


async def test_a_plus_participant_removes_someone_from_their_tile(call: Call) -> None:
    doctor, patient = call.doctor, call.patient
    remove = doctor.get_by_role("button", name="Remove Jane Doe from the call")
    await expect(remove).to_have_text(EN["remove"])
    await expect(patient.locator(".remove-peer")).to_have_count(0)  # basic: no control
    await screenshot(doctor, "remove-control-en")
    await remove.click()
    dialog = doctor.get_by_role("dialog", name="Remove Jane Doe from the call?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(EN["remove_explain"])
    await expect(dialog.get_by_role("button", name=EN["cancel"])).to_be_focused()
    assert await serious_violations(doctor) == []
    await doctor.set_viewport_size({"width": 390, "height": 844})
    await screenshot(doctor, "remove-dialog-en-phone")
    await doctor.keyboard.press("Escape")  # cancelled: nothing happens, focus comes back
    await expect(dialog).to_be_hidden()
    await expect(remove).to_be_focused()
    await expect(patient.locator("#app")).to_have_attribute("data-phase", "in-call")

    await remove.click()
    await dialog.get_by_role("button", name=EN["remove_confirm"]).click()

    await expect(patient.locator("#status")).to_have_text(IT["removed"])
    await expect(patient.locator("#next")).to_have_text(IT["next_removed"])
    await expect(doctor.locator(".tile.remote")).to_have_count(0)
    await screenshot(patient, "removed-it")
    async with ClientSession(call.api) as session:
        answer = await session.get(
            f"/teleconsultation/{call.room_id}", headers={"miauserid": "patient-1"}
        )
        assert (answer.status, (await answer.json())["code"]) == (403, "participant_blocked")
    assert call.problems == []
