"""The check page that needs no link (`/webrtc/check`), without a browser: what it holds and
hands out (tests/test_precheck_browser.py has the browser's side, and the lobby's checks)."""

from __future__ import annotations

from teleconsult.callpage import CONTENT_SECURITY_POLICY
from tests.helpers import TEXTS, WEBRTC, LogLines, MakeClient

TURN = {
    "WEBRTC_STUN_URLS": "stun:turn.example.org:3478",
    "WEBRTC_TURN_URLS": "turn:turn.example.org:3478?transport=udp",
    "WEBRTC_TURN_SECRET": "turn-shared-secret",
}


async def test_the_check_page_needs_no_link_and_holds_no_consultation(
    make_client: MakeClient,
) -> None:
    client = await make_client(**WEBRTC)

    page = await client.get("/webrtc/check", headers={"Accept-Language": "it-IT, en;q=0.5"})
    html = await page.text()

    assert page.status == 200
    assert '<html lang="it">' in html
    assert 'src="assets/check.js"' in html
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    for name in ("check.js", "precheck.js"):
        assert (await client.get(f"/webrtc/assets/{name}")).status == 200


async def test_the_check_pages_info_hands_out_stun_and_never_turn_credentials(
    make_client: MakeClient, log_lines: LogLines
) -> None:
    client = await make_client(**WEBRTC, **TURN)

    info = await (await client.get("/webrtc/check/info?lang=de")).json()

    assert info["language"] == "de"
    assert info["texts"]["check_title"] == TEXTS["de"]["check_title"]
    assert info["iceServers"] == [{"urls": ["stun:turn.example.org:3478"]}]
    assert info["iceTransportPolicy"] == "all"  # it connects to no peer: nobody learns an address
    assert set(info) == {"language", "texts", "iceServers", "iceTransportPolicy"}
    assert "turn-shared-secret" not in log_lines.text


async def test_without_stun_the_check_page_offers_no_servers(make_client: MakeClient) -> None:
    client = await make_client(**WEBRTC)

    info = await (await client.get("/webrtc/check/info")).json()

    assert (info["language"], info["iceServers"]) == ("en", [])


async def test_the_check_page_is_not_found_when_another_provider_runs(
    make_client: MakeClient,
) -> None:
    client = await make_client()  # fake

    assert (await client.get("/webrtc/check")).status == 404
    assert (await client.get("/webrtc/check/info")).status == 404
