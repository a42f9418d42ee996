"""Callers the service can trust: verified bearer tokens, and manager groups."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from teleconsult.configuration.settings import Settings
from teleconsult.errors import ConfigurationError
from tests.fake_jwks import AUDIENCE, ISSUER, SigningKeys
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    bearer,
    create,
    error,
    teleconsultation,
)

Server = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
def signing() -> SigningKeys:
    keys = SigningKeys()
    keys.add("k1")
    return keys


@pytest.fixture
async def token_client(
    make_client: MakeClient, aiohttp_server: Server, signing: SigningKeys
) -> Client:
    server = await aiohttp_server(signing.app())
    return await make_client(
        JWT_JWKS_URL=str(server.make_url("/.well-known/jwks.json")),
        JWT_AUDIENCE=AUDIENCE,
        JWT_ISSUER=ISSUER,
    )


async def test_a_valid_token_names_the_caller(
    token_client: Client, signing: SigningKeys, clock: FrozenClock
) -> None:
    room_id = await create_with_token(token_client, signing)
    clock.advance(hours=4)

    response = await token_client.get(
        f"/teleconsultation/{room_id}", headers=bearer(signing.token(sub="patient-1"))
    )

    assert response.status == 200
    body = await response.json()
    assert body["bandyerUserId"] == "patient-1"
    assert body["accessLinkURL"] is not None


async def create_with_token(client: Client, signing: SigningKeys) -> str:
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers=bearer(signing.token()),
    )
    assert response.status == 201, await response.text()
    room_id: str = (await response.json())["roomId"]
    return room_id


def forged(signing: SigningKeys) -> str:
    signing.add("k1-forger", publish=False)
    return jwt.encode(
        {"sub": "patient-1", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300},
        signing.private["k1-forger"],
        algorithm="RS256",
        headers={"kid": "k1"},  # claims the published key's id
    )


def unsigned() -> str:
    return jwt.encode(
        {"sub": "patient-1", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300},
        key="",
        algorithm="none",
    )


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda s: None, "A bearer token is required (Authorization: Bearer <token>)."),
        (lambda s: "not-a-jwt", "The bearer token is not a JWT."),
        (forged, "The bearer token is not valid: Signature verification failed."),
        (
            lambda s: s.token(sub="patient-1", exp=int(time.time()) - 120),
            "The bearer token is not valid: Signature has expired.",
        ),
        (
            lambda s: s.token(sub="patient-1", aud="https://other.example"),
            "The bearer token is not valid: Audience doesn't match.",
        ),
        (
            lambda s: s.token(sub="patient-1", iss="https://evil.example/"),
            "The bearer token is not valid: Invalid issuer.",
        ),
        (lambda s: unsigned(), "The bearer token must be signed with RS256."),
        (lambda s: s.token(sub=""), "The bearer token has no sub claim."),
    ],
)
async def test_a_bad_token_is_a_401(
    token_client: Client,
    signing: SigningKeys,
    make_token: Callable[[SigningKeys], str | None],
    message: str,
) -> None:
    room_id = await create_with_token(token_client, signing)
    token = make_token(signing)
    headers = {"miauserid": "patient-1", **(bearer(token) if token else {})}

    response = await token_client.get(f"/teleconsultation/{room_id}", headers=headers)

    assert response.status == 401
    assert await response.json() == error(401, message, "Unauthorized user")


async def test_writes_need_a_token_too(token_client: Client) -> None:
    response = await token_client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={"miauserid": "doctor-1"},
    )
    assert response.status == 401


async def test_keys_are_cached_and_fetched_again_once_for_a_new_kid(
    token_client: Client, signing: SigningKeys
) -> None:
    room_id = await create_with_token(token_client, signing)
    await token_client.get(f"/teleconsultation/{room_id}", headers=bearer(signing.token()))
    assert signing.fetches == 1

    signing.add("k2")  # the issuer rotates its keys
    response = await token_client.get(
        f"/teleconsultation/{room_id}", headers=bearer(signing.token("k2"))
    )
    assert response.status == 200
    assert signing.fetches == 2

    signing.add("k9", publish=False)
    for _ in range(3):  # unknown kids do not make us fetch again and again
        response = await token_client.get(
            f"/teleconsultation/{room_id}", headers=bearer(signing.token("k9"))
        )
        assert response.status == 401
    assert signing.fetches == 2


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"JWT_JWKS_URL": "https://x/jwks.json"},
            "JWT_JWKS_URL needs JWT_AUDIENCE, the audience tokens carry.",
        ),
        ({"JWT_AUDIENCE": AUDIENCE}, "JWT_AUDIENCE needs JWT_JWKS_URL (or AUTH0_DOMAIN)."),
        (
            {"JWT_AUDIENCE": AUDIENCE, "JWT_JWKS_URL": "https://x/jwks.json"},
            "JWT_AUDIENCE needs JWT_ISSUER (or AUTH0_DOMAIN).",
        ),
    ],
)
def test_incomplete_token_settings_stop_the_start(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ(environ)
    assert str(raised.value) == message


def test_auth0_domain_gives_the_key_url_and_issuer() -> None:
    settings = Settings.from_environ(
        {"AUTH0_DOMAIN": "tenant.eu.auth0.com", "JWT_AUDIENCE": AUDIENCE}
    )
    assert settings.tokens.jwks_url == "https://tenant.eu.auth0.com/.well-known/jwks.json"
    assert settings.tokens.issuer == "https://tenant.eu.auth0.com/"


# -- manager groups ----------------------------------------------------------------------------


async def test_manager_groups_from_the_header(make_client: MakeClient) -> None:
    client = await make_client(MANAGER_GROUPS="clinic-admin, scheduler")
    body = teleconsultation(2, DOCTOR, PATIENT)

    response = await client.post(
        "/teleconsultation", json=body, headers={"miausergroups": "patient"}
    )
    assert response.status == 403
    assert await response.json() == error(
        403,
        "Only members of the manager groups (clinic-admin, scheduler) may create, change or cancel teleconsultations.",
    )
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 403

    response = await client.post(
        "/teleconsultation", json=body, headers={"miausergroups": "nurse, scheduler"}
    )
    assert response.status == 201
    room_id = (await response.json())["roomId"]
    for method in ("PATCH", "DELETE"):
        response = await client.request(
            method,
            f"/teleconsultation/{room_id}",
            json={"start_date": "2030-02-22T15:00:00Z"} if method == "PATCH" else None,
        )
        assert response.status == 403, method
    response = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "patient-1"})
    assert response.status == 200  # joining needs no manager


async def test_manager_groups_from_the_token(
    make_client: MakeClient, aiohttp_server: Server, signing: SigningKeys
) -> None:
    server = await aiohttp_server(signing.app())
    client = await make_client(
        JWT_JWKS_URL=str(server.make_url("/.well-known/jwks.json")),
        JWT_AUDIENCE=AUDIENCE,
        JWT_ISSUER=ISSUER,
        JWT_GROUPS_CLAIM="https://teleconsult.example/groups",
        MANAGER_GROUPS="scheduler",
    )
    body = teleconsultation(2, DOCTOR, PATIENT)

    response = await client.post(
        "/teleconsultation",
        json=body,
        headers={**bearer(signing.token()), "miausergroups": "scheduler"},
    )
    assert response.status == 403  # a header cannot grant what the token does not

    token = signing.token(extra={"https://teleconsult.example/groups": ["scheduler"]})
    response = await client.post("/teleconsultation", json=body, headers=bearer(token))
    assert response.status == 201


async def test_without_settings_the_header_still_names_the_caller(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    assert response.status == 200
