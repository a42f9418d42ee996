"""The jitsi plugin through the HTTP API: every token handed out is decoded and checked claim
by claim against lib-jitsi-meet's doc/tokens.md (and 8x8's rules for JaaS).

A token for another room, for every room (`*`), or valid outside the consultation's
window fails these tests: the claims are compared whole, to the second.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from tests.helpers import (
    DOCTOR,
    JITSI_DOMAIN,
    JITSI_SECRET,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    Refusal,
    create,
    error,
    jitsi_env,
    join,
    person,
    provider_room,
    stored_document,
    teleconsultation,
    unix,
)

CONFIG = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"chat": True, "file_upload": True}},
        "plus": {"groups": ["doctor"]},
    }
}
START = datetime(2030, 2, 22, 15, 30, tzinfo=UTC)
END = datetime(2030, 2, 22, 16, 30, tzinfo=UTC)
LOCK = START - timedelta(minutes=10)
GRACE = timedelta(minutes=15)
ROOM_NAME = re.compile(r"teleconsult-[0-9a-f]{32}")
DOCTOR_FEATURES = {
    "send-groupchat": "true",
    "send-private-message": "true",
    "screen-sharing": "true",
    "file-upload": "true",
}
PATIENT_FEATURES = {**DOCTOR_FEATURES, "screen-sharing": "false"}


@pytest.fixture
async def jitsi(make_client: MakeClient, clock: FrozenClock) -> Client:
    return await make_client(
        CONFIG,
        **jitsi_env(UNLIMITED_TELECONSULTATION="false", IMMUTABLE_PERIOD_MS=str(10 * 60 * 1000)),
    )


def opened(link: str, domain: str = JITSI_DOMAIN) -> tuple[str, str, str]:
    """(room path, token, fragment) of a link, which must be https on the Jitsi domain."""
    url = URL(link)
    assert (url.scheme, url.host, url.port) == ("https", domain, 443)
    assert list(url.query) == ["jwt"]
    return url.path.removeprefix("/"), url.query["jwt"], url.fragment


def decoded(token: str, key: Any = JITSI_SECRET, algorithm: str = "HS256") -> dict[str, Any]:
    """The claims of a token whose signature verifies, whatever the time: the tests compare
    `nbf` and `exp` with the consultation's window themselves."""
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[algorithm],
        options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
    )
    return claims


def expected_claims(
    room: str, user: str, name: str, moderator: bool, features: dict[str, str], exp: datetime
) -> dict[str, Any]:
    return {
        "iss": "teleconsult",
        "aud": "jitsi",
        "sub": "*",
        "room": room,
        "nbf": unix(LOCK),
        "exp": unix(exp),
        "moderator": moderator,
        "context": {
            "user": {"id": user, "name": name, "moderator": "true" if moderator else "false"},
            "features": features,
        },
    }


async def test_each_participant_gets_a_token_for_this_room_and_this_window(
    jitsi: Client, clock: FrozenClock
) -> None:
    room_id = await create(jitsi, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(jitsi, room_id)
    assert ROOM_NAME.fullmatch(room)
    assert (await stored_document(jitsi, room_id))["room"]["links"] == {}  # no token kept
    assert (await join(jitsi, room_id, "doctor-1"))[1]["accessLinkURL"] is None  # not locked

    clock.now = LOCK
    _, doctor = await join(jitsi, room_id, "doctor-1")
    _, patient = await join(jitsi, room_id, "patient-1")

    assert doctor == {
        "bandyerUserId": "doctor-1",
        "accessLinkURL": doctor["accessLinkURL"],
        "participantsBandyerCall": [
            {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
            {"bandyerUserId": "patient-1", "fullName": "Jane Doe"},
        ],
    }  # no `details`: Jitsi has no room to describe
    for body, user, name, moderator, features in [
        (doctor, "doctor-1", "Joe Smith", True, DOCTOR_FEATURES),
        (patient, "patient-1", "Jane Doe", False, PATIENT_FEATURES),
    ]:
        path, token, fragment = opened(body["accessLinkURL"])
        assert path == room
        assert fragment == 'config.defaultLanguage="it"'
        assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
        assert decoded(token) == expected_claims(room, user, name, moderator, features, END + GRACE)


async def test_a_room_without_a_duration_gets_tokens_for_the_maximum_lifetime(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(CONFIG, **jitsi_env(JITSI_MAX_LIFETIME_MS=str(2 * 3600 * 1000)))
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.now = START

    _, body = await join(client, room_id, "patient-1")

    claims = decoded(opened(body["accessLinkURL"])[1])
    assert (claims["nbf"], claims["exp"]) == (unix(START), unix(START + timedelta(hours=2)))


async def test_a_token_opens_only_its_own_room(jitsi: Client, clock: FrozenClock) -> None:
    first = await create(jitsi, teleconsultation(2, DOCTOR, PATIENT))
    second = await create(jitsi, teleconsultation(2, DOCTOR, NURSE))
    first_room, second_room = await provider_room(jitsi, first), await provider_room(jitsi, second)
    assert first_room != second_room

    clock.now = LOCK
    links = [(await join(jitsi, tc, "doctor-1"))[1]["accessLinkURL"] for tc in (first, second)]

    assert [decoded(opened(link)[1])["room"] for link in links] == [first_room, second_room]


async def test_a_replaced_room_gets_a_new_name(jitsi: Client, clock: FrozenClock) -> None:
    room_id = await create(jitsi, teleconsultation(2, DOCTOR, PATIENT))
    before = await provider_room(jitsi, room_id)

    response = await jitsi.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [DOCTOR, NURSE]}},
    )
    assert response.status == 204
    after = await provider_room(jitsi, room_id)
    assert after != before
    assert ROOM_NAME.fullmatch(after)

    clock.now = LOCK
    _, body = await join(jitsi, room_id, "nurse-1")
    assert decoded(opened(body["accessLinkURL"])[1])["room"] == after


async def test_the_link_opens_in_the_asked_language_or_none(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(CONFIG, **jitsi_env())
    patient = person("patient-1", ["patient"], "Jane Doe", language=None)
    room_id = await create(client, teleconsultation(2, DOCTOR, patient))
    clock.now = START

    _, body = await join(client, room_id, "patient-1")
    assert "#" not in body["accessLinkURL"]

    response = await client.get(
        f"/teleconsultation/{room_id}?language=fr", headers={"miauserid": "patient-1"}
    )
    link = (await response.json())["accessLinkURL"]
    assert link.endswith("#config.defaultLanguage=%22fr%22")  # a JSON string, URL-encoded


async def test_jaas_tokens_are_rs256_with_the_key_id_and_the_appid(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    tenant = "vpaas-magic-cookie-0123456789abcdef0123456789abcdef"
    client = await make_client(
        CONFIG,
        VIDEO_PROVIDER="jitsi",
        JITSI_DOMAIN="8x8.vc",
        JITSI_APP_ID="chat",
        JITSI_TENANT=tenant,
        JITSI_KEY_ID=f"{tenant}/4f4910",
        JITSI_PRIVATE_KEY=pem.replace("\n", "\\n"),  # as a one-line variable may hold it
    )
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    clock.now = START

    _, body = await join(client, room_id, "doctor-1")

    path, token, _ = opened(body["accessLinkURL"], domain="8x8.vc")
    assert path == f"{tenant}/{room}"  # JaaS serves a tenant's rooms under its AppID
    assert jwt.get_unverified_header(token) == {
        "alg": "RS256",
        "typ": "JWT",
        "kid": f"{tenant}/4f4910",
    }
    claims = decoded(token, key.public_key(), "RS256")
    assert {name: claims[name] for name in ("iss", "aud", "sub", "room")} == {
        "iss": "chat",
        "aud": "jitsi",
        "sub": tenant,
        "room": room,
    }
    assert claims["context"]["user"]["moderator"] == "true"
    assert claims["context"]["features"] == DOCTOR_FEATURES


async def test_cancelling_needs_no_call_and_forgets_the_room(
    jitsi: Client, clock: FrozenClock
) -> None:
    room_id = await create(jitsi, teleconsultation(2, DOCTOR, PATIENT))
    response = await jitsi.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert (await join(jitsi, room_id, "doctor-1"))[0] == 404


async def test_jitsi_offers_no_optional_capability(jitsi: Client) -> None:
    response = await jitsi.post("/credentials", headers={"miauserid": "doctor-1"})
    assert response.status == 501
    assert await response.json() == error(
        501, "The jitsi video provider does not offer SDK credentials."
    )
    response = await jitsi.get("/-/check-up")
    assert response.status == 200


async def test_no_token_secret_or_name_reaches_the_log(
    jitsi: Client, clock: FrozenClock, log_lines: LogLines
) -> None:
    room_id = await create(jitsi, teleconsultation(2, DOCTOR, PATIENT))
    clock.now = LOCK
    links = [
        (await join(jitsi, room_id, user))[1]["accessLinkURL"] for user in ("doctor-1", "patient-1")
    ]
    tokens = [opened(link)[1] for link in links]

    assert log_lines.parsed(), "the flow was logged"
    leaked = [
        value
        for value in (JITSI_SECRET, "Joe Smith", "Jane Doe", *links, *tokens)
        if value in log_lines.text
    ]
    assert leaked == []


GOOD = jitsi_env()


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {**GOOD, "JITSI_DOMAIN": ""},
            "VIDEO_PROVIDER=jitsi needs JITSI_DOMAIN, the host of the Jitsi Meet deployment "
            "(for example meet.example.org, or 8x8.vc for 8x8 JaaS).",
        ),
        (
            {**GOOD, "JITSI_DOMAIN": "https://meet.example.org/"},
            "JITSI_DOMAIN must be a host name (links are https://<JITSI_DOMAIN>/<room>); "
            "got 'https://meet.example.org/'.",
        ),
        (
            {**GOOD, "JITSI_APP_ID": ""},
            "VIDEO_PROVIDER=jitsi needs JITSI_APP_ID, the issuer of its tokens "
            "(prosody's app_id; chat for 8x8 JaaS).",
        ),
        (
            {**GOOD, "JITSI_APP_SECRET": ""},
            "VIDEO_PROVIDER=jitsi needs JITSI_APP_SECRET (HS256), or JITSI_PRIVATE_KEY and "
            "JITSI_KEY_ID (RS256, as 8x8 JaaS requires).",
        ),
        (
            {**GOOD, "JITSI_APP_SECRET": "short-secret"},
            "JITSI_APP_SECRET must be at least 32 characters: a shorter HS256 secret could be "
            "guessed from any token handed out.",
        ),
        (
            {**GOOD, "JITSI_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\\nnot a key"},
            "Set JITSI_APP_SECRET (HS256) or JITSI_PRIVATE_KEY (RS256), not both.",
        ),
        (
            {**GOOD, "JITSI_APP_SECRET": "", "JITSI_PRIVATE_KEY": "not-a-key-at-all"},
            "JITSI_PRIVATE_KEY must be an unencrypted RSA private key of at least 2048 bits, "
            "in PEM form.",
        ),
        (
            {**GOOD, "JITSI_KEY_ID": "kid-1"},
            "JITSI_KEY_ID goes with JITSI_PRIVATE_KEY (RS256 tokens).",
        ),
        (
            {**GOOD, "JITSI_TENANT": "Tenant/One"},
            "JITSI_TENANT must be * or a lower-case tenant name; got 'Tenant/One'.",
        ),
        (
            {**GOOD, "JITSI_TOKEN_GRACE_MS": "-1"},
            "JITSI_TOKEN_GRACE_MS must be at least 0 and at most 86400000; got -1.",
        ),
    ],
)
def test_bad_configuration_stops_the_start_with_one_line(
    serve_refusal: Refusal, environ: dict[str, str], line: str
) -> None:
    assert serve_refusal(environ) == f"teleconsult: configuration error: {line}\n"


def test_jaas_settings_must_agree_with_the_appid(serve_refusal: Refusal) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    environ = {
        **GOOD,
        "JITSI_APP_SECRET": "",
        "JITSI_PRIVATE_KEY": pem,
        "JITSI_TENANT": "vpaas-magic-cookie-abc",
        "JITSI_KEY_ID": "vpaas-magic-cookie-xyz/1",
    }

    assert serve_refusal(environ) == (
        "teleconsult: configuration error: With 8x8 JaaS "
        "(JITSI_TENANT=vpaas-magic-cookie-abc), JITSI_KEY_ID must be <JITSI_TENANT>/<key>, "
        "JITSI_APP_ID chat and JITSI_AUDIENCE jitsi; check JITSI_KEY_ID, JITSI_APP_ID.\n"
    )
