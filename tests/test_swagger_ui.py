"""Swagger UI, as an integrator meets it in Debian's chromium: Authorize with the caller-id
header, then "Try it out" on GET /teleconsultation/{roomId} shows the participant their link."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import aiohttp
from aiohttp import web
from playwright.async_api import Browser

from teleconsult.plugin import stable_user_id
from tests.helpers import DOCTOR, PATIENT, AppServing, FrozenClock, teleconsultation
from tests.test_webrtc_browser import TIMEOUT_MS


async def test_authorize_then_try_it_out_shows_a_participant_their_link(
    browser: Browser,
    build_app: Callable[..., web.Application],
    app_server: AppServing,
    clock: FrozenClock,
) -> None:
    server = await app_server(build_app())
    base_url = str(server.make_url("")).rstrip("/")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url}/teleconsultation",
            json=teleconsultation(2, DOCTOR, PATIENT),
            headers={"miauserid": "doctor-1"},
        ) as created,
    ):
        room_id = (await created.json())["roomId"]
    clock.advance(hours=4)  # the call is due: links are handed out

    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{base_url}/documentation/")
    await page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    await dialog.locator("input").fill("patient-1")  # the callerId scheme: miauserid
    await dialog.get_by_role("button", name="Apply credentials").click()
    await dialog.get_by_role("button", name="Close").click()

    operation = page.locator("#operations-teleconsultations-getTeleconsultation")
    await operation.locator(".opblock-summary").click()
    await operation.get_by_role("button", name="Try it out").click()
    await operation.locator('input[placeholder="roomId"]').fill(room_id)
    await operation.get_by_role("button", name="Execute").click()

    status = operation.locator(".live-responses-table .response .response-col_status")
    await status.first.wait_for()
    assert (await status.first.inner_text()).strip() == "200"
    body = json.loads(
        await operation.locator(
            ".live-responses-table .response-col_description pre"
        ).first.inner_text()
    )
    link = body.pop("accessLinkURL")
    assert re.fullmatch(r"http://127\.0\.0\.1:3000/fake-video/join/[\w-]+\?l=it", link), link
    body.pop("details")  # the provider's view of the room
    assert body == {
        "bandyerUserId": stable_user_id("patient-1"),
        "participantsBandyerCall": [
            {"bandyerUserId": stable_user_id("doctor-1"), "fullName": "Joe Smith"},
            {"bandyerUserId": stable_user_id("patient-1"), "fullName": "Jane Doe"},
        ],
    }
    curl = await operation.locator(".curl-command").inner_text()  # what Swagger UI sent
    assert "-H 'miauserid: patient-1'" in curl, curl
    await page.close()
