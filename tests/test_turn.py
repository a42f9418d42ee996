"""TURN credentials against a real coturn: the ones a page's info hands out are accepted,
and coturn itself refuses those minted for another secret, past their expiry or altered;
over TLS too. Their lifetime ends when the link stops opening the call (the window)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from teleconsult.callpage.ice import turn_credentials
from tests.helpers import (
    DOCTOR,
    END,
    PATIENT,
    STARTED,
    WEBRTC,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    path_of,
    webrtc_call,
)
from tests.turn import Coturn, allocate, coturn, self_signed


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[Coturn]:
    with coturn(tmp_path) as server:
        yield server


async def turn_server_of(client: Client, link: str) -> dict[str, Any]:
    """The TURN entry of the page's info for `link`."""
    info = await (await client.get(path_of(link) + "/info")).json()
    (server,) = [entry for entry in info["iceServers"] if "username" in entry]
    return dict(server)


def settings_for(turn: Coturn, secret: str | None = None) -> dict[str, str]:
    return {
        **WEBRTC,
        "WEBRTC_TURN_URLS": turn.url,
        "WEBRTC_TURN_SECRET": secret or turn.secret,
    }


async def test_coturn_relays_for_the_credentials_a_page_is_handed_and_refuses_them_altered(
    make_client: MakeClient, clock: FrozenClock, turn: Coturn, log_lines: LogLines
) -> None:
    client = await make_client(**settings_for(turn))
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    server = await turn_server_of(client, links["doctor-1"])
    other = await turn_server_of(client, links["patient-1"])
    username, credential = server["username"], server["credential"]
    expiry, user = username.split(":")

    accepted = allocate(turn.host, turn.port, username, credential)
    later = allocate(turn.host, turn.port, f"{int(expiry) + 3600}:{user}", credential)
    swapped = allocate(turn.host, turn.port, username, other["credential"])

    assert (accepted.code, accepted.relayed and accepted.relayed[0]) == (200, "127.0.0.1")
    assert (later.code, later.reason) == (401, "Unauthorized")  # a longer life is not for sale
    assert (swapped.code, swapped.reason) == (401, "Unauthorized")
    assert turn.secret not in log_lines.text
    assert credential not in log_lines.text


async def test_coturn_refuses_credentials_minted_for_another_secret(
    make_client: MakeClient, clock: FrozenClock, turn: Coturn
) -> None:
    client = await make_client(**settings_for(turn, secret="not-the-turn-servers-secret"))
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    server = await turn_server_of(client, links["doctor-1"])

    refused = allocate(turn.host, turn.port, server["username"], server["credential"])

    assert (refused.code, refused.reason) == (401, "Unauthorized")
    assert f"Cannot find credentials of user <{server['username']}>" in turn.log.read_text()


def test_coturn_refuses_credentials_past_their_expiry(turn: Coturn) -> None:
    now = int(time.time())
    expired = turn_credentials(turn.secret, "opaque-id", now - 60)
    valid = turn_credentials(turn.secret, "opaque-id", now + 60)  # the same, but for its time

    refused = allocate(turn.host, turn.port, *expired)
    accepted = allocate(turn.host, turn.port, *valid)

    assert (refused.code, refused.reason) == (401, "Unauthorized")
    assert accepted.code == 200
    assert f"Cannot find credentials of user <{expired[0]}>" in turn.log.read_text()


@pytest.mark.parametrize(
    ("settings", "expires"),
    [
        ({"UNLIMITED_TELECONSULTATION": "false", "WEBRTC_LINK_GRACE_MS": "60000"}, "end+grace"),
        ({"WEBRTC_MAX_LIFETIME_MS": "7200000"}, "start+lifetime"),
    ],
    ids=["limited", "unlimited"],
)
async def test_turn_credentials_expire_when_the_link_stops_opening_the_call(
    make_client: MakeClient,
    clock: FrozenClock,
    turn: Coturn,
    settings: dict[str, str],
    expires: str,
) -> None:
    client = await make_client(**settings_for(turn), **settings)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)

    server = await turn_server_of(client, links["doctor-1"])

    end = datetime.fromisoformat(END.replace("Z", "+00:00"))
    window_closes = {
        "end+grace": end + timedelta(minutes=1),
        "start+lifetime": STARTED + timedelta(hours=2),
    }[expires]
    assert int(server["username"].split(":")[0]) == int(window_closes.timestamp())
    clock.now = window_closes  # the link opens nothing from then on
    assert (await client.get(path_of(links["doctor-1"]) + "/info")).status == 410


def test_coturns_tls_listener_checks_the_same_credentials(tmp_path: Path) -> None:
    certificate, key = self_signed(tmp_path)
    tls = ssl.create_default_context(cafile=str(certificate))  # the test's own authority
    with coturn(tmp_path, certificate=(certificate, key)) as server:
        assert server.tls_port is not None
        now = int(time.time())
        valid = turn_credentials(server.secret, "opaque-id", now + 60)
        expired = turn_credentials(server.secret, "opaque-id", now - 60)

        accepted = allocate(server.host, server.tls_port, *valid, tls=tls)
        refused = allocate(server.host, server.tls_port, *expired, tls=tls)

    assert (accepted.code, accepted.relayed and accepted.relayed[0]) == (200, "127.0.0.1")
    assert (refused.code, refused.reason) == (401, "Unauthorized")
