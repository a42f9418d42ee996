"""The call page's ICE servers, as every provider that serves it hands them out
(`CallPage.ice`, `CallPage.check_ice`): pure rules, no server."""

from __future__ import annotations

from datetime import UTC, datetime

from teleconsult.callpage.catalogs import BUILT_IN, Catalogs
from teleconsult.plugin import CallPage, IceServers

SERVERS = IceServers.parse(
    "stun:turn.example.org:3478",
    "turns:turn.example.org:443?transport=tcp",
    "turn-shared-secret",
    "relay",
)
PAGE = CallPage(Catalogs(BUILT_IN, "en"), ice_servers=SERVERS)


def test_a_participants_turn_credentials_expire_no_later_than_the_link() -> None:
    link_closes = datetime(2030, 2, 22, 16, 45, 0, 900_000, tzinfo=UTC)  # .9 s: rounded down

    ice = PAGE.ice(valid_until=link_closes)

    stun, turn = ice["iceServers"]
    assert stun == {"urls": ["stun:turn.example.org:3478"]}
    assert turn["urls"] == ["turns:turn.example.org:443?transport=tcp"]
    assert str(turn["username"]).split(":")[0] == str(int(link_closes.timestamp()))
    assert ice["iceTransportPolicy"] == "relay"


def test_each_page_gets_credentials_of_its_own() -> None:
    until = datetime(2030, 2, 22, 16, 45, tzinfo=UTC)

    first, second = (PAGE.ice(valid_until=until)["iceServers"][1] for _ in range(2))

    assert first["username"] != second["username"]
    assert first["credential"] != second["credential"]


def test_the_check_page_gets_stun_only_and_gathers_with_all() -> None:
    assert PAGE.check_ice() == {
        "iceServers": [{"urls": ["stun:turn.example.org:3478"]}],
        "iceTransportPolicy": "all",  # it connects to no peer: nobody learns an address
    }


def test_a_page_built_outside_an_app_hands_out_no_servers() -> None:
    page = CallPage(Catalogs(BUILT_IN, "en"))

    ice = page.ice(valid_until=datetime(2030, 1, 1, tzinfo=UTC))

    assert (ice["iceServers"], ice["iceTransportPolicy"]) == ([], "all")
