"""The auth0 identity provider, end to end, against fake auth0-client, Management API and users CRUD."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from teleconsult.configuration.settings import Settings
from teleconsult.plugin import stable_user_id
from tests.fake_auth0 import FakeAuth0Client, FakeManagementApi, FakeUsersCrud
from tests.helpers import START, Client, MakeClient, create, error, fake_video, free_port, join

Server = Callable[[web.Application], Awaitable[TestServer]]

USERS: dict[str, dict[str, Any]] = {
    "auth0|doc": {"name": "Joe Smith", "groups": ["doctor"]},
    "auth0|pat": {"name": "Jane Doe", "app_metadata": {"groups": ["patient"]}},
    "auth0|nurse": {"name": "Ann Lee", "groups": ["patient"]},
    "auth0|nobody": {"name": "No Groups"},
}


def body(participants: Any) -> dict[str, Any]:
    return {"participants": participants, "start_date": START, "end_date": "2030-02-22T16:30:00Z"}


def url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def auth0_client_service() -> FakeAuth0Client:
    return FakeAuth0Client(users=dict(USERS))


@pytest.fixture
async def auth_service_client(
    make_client: MakeClient, aiohttp_server: Server, auth0_client_service: FakeAuth0Client
) -> Client:
    server = await aiohttp_server(auth0_client_service.app())
    return await make_client(
        AUTH_SERVICE=url(server),
        DEFAULT_CLIENT_TYPE="teleconsult-backend",
        ADDITIONAL_HEADERS_TO_PROXY="x-request-id, x-forwarded-for",
    )


def test_auth_service_or_domain_makes_auth0_the_default() -> None:
    assert (
        Settings.from_environ({"AUTH_SERVICE": "auth0-client"}).service.identity_provider == "auth0"
    )
    assert (
        Settings.from_environ({"AUTH0_DOMAIN": "x.eu.auth0.com"}).service.identity_provider
        == "auth0"
    )
    explicit = {"AUTH_SERVICE": "auth0-client", "IDENTITY_PROVIDER": "static"}
    assert Settings.from_environ(explicit).service.identity_provider == "static"


async def test_an_array_of_ids_is_enough(
    auth_service_client: Client, auth0_client_service: FakeAuth0Client
) -> None:
    room_id = await create(auth_service_client, body(["auth0|doc", "auth0|pat"]))

    status, answer = await join(auth_service_client, room_id, "auth0|pat")
    assert status == 200
    assert {name: value for name, value in answer.items() if name != "details"} == {
        "bandyerUserId": stable_user_id("auth0|pat"),
        "accessLinkURL": None,
        "participantsBandyerCall": [
            {"bandyerUserId": stable_user_id("auth0|doc"), "fullName": "Joe Smith"},
            {"bandyerUserId": stable_user_id("auth0|pat"), "fullName": "Jane Doe"},
        ],
    }
    [room] = fake_video(auth_service_client).rooms.values()
    assert [p.is_admin for p in room.spec.participants] == [True, False]
    assert sorted(r.path for r in auth0_client_service.received) == [
        "/users/auth0|doc",
        "/users/auth0|pat",
    ]


async def test_client_type_and_listed_headers_are_forwarded(
    auth_service_client: Client, auth0_client_service: FakeAuth0Client
) -> None:
    response = await auth_service_client.post(
        "/teleconsultation",
        json=body({"number": 3, "data": [{"userExternalId": "auth0|doc", "language": "it"}]}),
        headers={"x-request-id": "req-1", "cookie": "session=secret", "client-type": "portal"},
    )
    assert response.status == 201
    [received] = auth0_client_service.received
    assert received.headers["client-type"] == "portal"
    assert received.headers["x-request-id"] == "req-1"
    assert "cookie" not in {name.lower() for name in received.headers}

    auth0_client_service.received.clear()
    await auth_service_client.post(
        "/teleconsultation", json=body({"number": 3, "data": [{"userExternalId": "auth0|pat"}]})
    )
    assert auth0_client_service.received[0].headers["client-type"] == "teleconsult-backend"


async def test_object_form_then_the_last_participant_by_id(auth_service_client: Client) -> None:
    room_id = await create(
        auth_service_client,
        body(
            {
                "number": 3,
                "data": [
                    {"userExternalId": "auth0|doc", "language": "it"},
                    {"userExternalId": "auth0|pat"},
                ],
            }
        ),
    )
    assert fake_video(auth_service_client).rooms == {}

    response = await auth_service_client.post(
        f"/teleconsultation/{room_id}/participants/data",
        json={"userExternalId": "auth0|nurse", "language": "en"},
    )

    assert response.status == 201
    [room] = fake_video(auth_service_client).rooms.values()
    assert len(room.spec.participants) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"userExternalId": "auth0|pat", "groups": ["doctor"]},
            "participants.data[0].groups is not accepted with the auth0 identity provider: "
            "groups and names come from Auth0. Send userExternalId (and language) only.",
        ),
        (
            {"userExternalId": "auth0|pat", "group": "doctor"},
            "participants.data[0].groups is not accepted with the auth0 identity provider: "
            "groups and names come from Auth0. Send userExternalId (and language) only.",
        ),
        (
            {"userExternalId": "auth0|pat", "fullName": "Dr Pat"},
            "participants.data[0].fullName is not accepted with the auth0 identity provider: "
            "groups and names come from Auth0. Send userExternalId (and language) only.",
        ),
    ],
)
async def test_a_caller_cannot_pick_a_role_or_a_name(
    auth_service_client: Client, data: dict[str, Any], message: str
) -> None:
    response = await auth_service_client.post(
        "/teleconsultation", json=body({"number": 2, "data": [data]})
    )
    assert response.status == 400
    assert await response.json() == error(400, message, path=message.split(" ")[0])


async def test_adding_a_participant_with_groups_is_refused(auth_service_client: Client) -> None:
    room_id = await create(
        auth_service_client, body({"number": 3, "data": [{"userExternalId": "auth0|doc"}]})
    )
    response = await auth_service_client.post(
        f"/teleconsultation/{room_id}/participants/data",
        json={"userExternalId": "auth0|pat", "groups": ["doctor"]},
    )
    assert response.status == 400
    assert (await response.json())["message"].startswith("body.groups is not accepted")


async def test_the_level_always_comes_from_auth0(auth_service_client: Client) -> None:
    response = await auth_service_client.post(
        "/teleconsultation", json=body(["auth0|pat", "auth0|nurse"])
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        "At least one participant must belong to a group of the plus privilege level.",
        "Failed POST /teleconsultation: no plus user in room",
        code="no_plus_user",
    )


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["auth0|doc", "auth0|ghost"], "Participant 'auth0|ghost' is not a user known to Auth0."),
        (
            ["auth0|doc", "auth0|nobody"],
            "Participant 'auth0|nobody' belongs to none of the configured groups (doctor, patient); got [].",
        ),
    ],
)
async def test_unknown_or_groupless_users_are_named(
    auth_service_client: Client, ids: list[str], message: str
) -> None:
    response = await auth_service_client.post("/teleconsultation", json=body(ids))
    assert response.status == 400
    assert await response.json() == error(400, message, path="participants[1]")


async def test_a_failing_auth0_client_is_a_502(
    auth_service_client: Client, auth0_client_service: FakeAuth0Client
) -> None:
    auth0_client_service.fail_with = [500] * 6  # three attempts for each of two users
    response = await auth_service_client.post(
        "/teleconsultation", json=body(["auth0|doc", "auth0|pat"])
    )
    assert response.status == 502
    assert (await response.json())["message"] == (
        "The auth0-client provider failed to look up a user: HTTP 500: injected"
    )


async def test_an_unreachable_auth0_client_is_a_503(make_client: MakeClient) -> None:
    client = await make_client(AUTH_SERVICE=f"127.0.0.1:{free_port()}")
    response = await client.post("/teleconsultation", json=body(["auth0|doc", "auth0|pat"]))
    assert response.status == 503
    assert await response.json() == error(
        503,
        "The auth0-client provider failed to look up a user: cannot connect",
        code="provider_unavailable",
    )


# -- the Management API ---------------------------------------------------------------------


@pytest.fixture
def management() -> FakeManagementApi:
    return FakeManagementApi(
        users={
            "auth0|doc": {
                "user_id": "auth0|doc",
                "name": "Joe Smith",
                "app_metadata": {"groups": ["doctor"]},
            },
            "auth0|pat": {
                "user_id": "auth0|pat",
                "name": "Jane Doe",
                "app_metadata": {"groups": ["patient"]},
            },
        },
        roles={"auth0|doc": ["doctor"], "auth0|pat": ["patient", "visitor"]},
    )


@pytest.fixture
async def management_env(aiohttp_server: Server, management: FakeManagementApi) -> dict[str, str]:
    server = await aiohttp_server(management.app())
    return {
        "AUTH0_DOMAIN": "tenant.eu.auth0.com",
        "AUTH0_BASE_URL": url(server),
        "AUTH0_CLIENT_ID": "m2m-client",
        "AUTH0_CLIENT_SECRET": "m2m-secret",
    }


async def test_users_come_from_the_management_api_with_one_cached_token(
    make_client: MakeClient, management_env: dict[str, str], management: FakeManagementApi
) -> None:
    client = await make_client(**management_env)
    room_id = await create(client, body(["auth0|doc", "auth0|pat"]))
    await create(client, body(["auth0|doc", "auth0|pat"]))  # lookups cached: no new calls

    assert [(r.method, r.path) for r in management.received if r.method == "POST"] == [
        ("POST", "/oauth/token")
    ]
    assert management.received[0].body == {
        "grant_type": "client_credentials",
        "client_id": "m2m-client",
        "client_secret": "m2m-secret",
        "audience": "https://tenant.eu.auth0.com/api/v2/",
    }
    lookups = [r for r in management.received if r.method == "GET"]
    assert sorted(r.path for r in lookups) == ["/api/v2/users/auth0|doc", "/api/v2/users/auth0|pat"]
    assert {r.headers["authorization"] for r in lookups} == {"Bearer token-1"}
    _, answer = await join(client, room_id, "auth0|doc")
    assert [p["fullName"] for p in answer["participantsBandyerCall"]] == ["Joe Smith", "Jane Doe"]


async def test_groups_from_roles(
    make_client: MakeClient, management_env: dict[str, str], management: FakeManagementApi
) -> None:
    management.users["auth0|doc"]["app_metadata"] = {"groups": ["patient"]}  # roles win
    client = await make_client(**management_env, AUTH0_GROUPS_SOURCE="roles")
    await create(client, body(["auth0|doc", "auth0|pat"]))
    [room] = fake_video(client).rooms.values()
    assert [p.is_admin for p in room.spec.participants] == [True, False]
    assert "/api/v2/users/auth0|doc/roles" in [r.path for r in management.received]


async def test_an_expired_token_is_renewed_once(
    make_client: MakeClient, management_env: dict[str, str], management: FakeManagementApi
) -> None:
    client = await make_client(**management_env, AUTH0_CACHE_TTL_MS="0")
    await create(client, body(["auth0|doc", "auth0|pat"]))
    management.revoke_tokens()

    await create(client, body(["auth0|doc", "auth0|pat"]))

    assert len([r for r in management.received if r.path == "/oauth/token"]) == 2


async def test_rate_limits_wait_for_the_reset(
    make_client: MakeClient, management_env: dict[str, str], management: FakeManagementApi
) -> None:
    client = await make_client(**management_env)
    management.rate_limited = 1
    await create(client, body(["auth0|doc", "auth0|pat"]))
    assert len([r for r in management.received if r.path.startswith("/api/v2/users/")]) == 3


async def test_wrong_credentials_are_a_502_without_the_secret(
    make_client: MakeClient, management_env: dict[str, str]
) -> None:
    client = await make_client(**{**management_env, "AUTH0_CLIENT_SECRET": "wrong-secret-42"})
    response = await client.post("/teleconsultation", json=body(["auth0|doc", "auth0|pat"]))
    assert response.status == 502
    text = await response.text()
    assert "wrong-secret-42" not in text
    assert await response.json() == error(
        502, "The auth0 provider failed to get a Management API token: HTTP 401: access_denied"
    )


# -- custom user ids ---------------------------------------------------------------------------


async def test_custom_ids_are_resolved_before_the_lookup(
    make_client: MakeClient, aiohttp_server: Server, auth0_client_service: FakeAuth0Client
) -> None:
    crud = FakeUsersCrud(
        records=[
            {"_id": "64b000000000000000000001", "authUserId": "auth0|doc"},
            {"_id": "64b000000000000000000002", "authUserId": "auth0|pat"},
        ]
    )
    auth = await aiohttp_server(auth0_client_service.app())
    users = await aiohttp_server(crud.app())
    client = await make_client(
        AUTH_SERVICE=url(auth), CUSTOM_ID_USERS_API_ENDPOINT=url(users) + "/"
    )

    room_id = await create(client, body(["64b000000000000000000001", "64b000000000000000000002"]))

    assert sorted(r.query["_id"] for r in crud.received) == [
        "64b000000000000000000001",
        "64b000000000000000000002",
    ]
    assert sorted(r.path for r in auth0_client_service.received) == [
        "/users/auth0|doc",
        "/users/auth0|pat",
    ]
    status, answer = await join(client, room_id, "64b000000000000000000002")
    assert status == 200
    assert answer["participantsBandyerCall"][1]["fullName"] == "Jane Doe"

    response = await client.post(
        "/teleconsultation", json=body(["64b000000000000000000001", "nope"])
    )
    assert response.status == 400
    assert await response.json() == error(
        400, "Participant 'nope': no user has _id 'nope'.", path="participants[1]"
    )


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"IDENTITY_PROVIDER": "auth0"},
            "IDENTITY_PROVIDER=auth0 needs AUTH_SERVICE (the auth0-client host) or AUTH0_DOMAIN "
            "with AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET.",
        ),
        (
            {"AUTH0_DOMAIN": "t.eu.auth0.com"},
            "AUTH0_DOMAIN needs AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (a machine-to-machine "
            "application allowed to read users).",
        ),
        (
            {
                "AUTH0_DOMAIN": "t",
                "AUTH0_CLIENT_ID": "i",
                "AUTH0_CLIENT_SECRET": "s",
                "AUTH0_GROUPS_SOURCE": "ldap",
            },
            "AUTH0_GROUPS_SOURCE must be app_metadata or roles; got 'ldap'.",
        ),
        (
            {"AUTH_SERVICE": "a", "AUTH0_CACHE_TTL_MS": "soon"},
            "AUTH0_CACHE_TTL_MS must be a whole number; got 'soon'.",
        ),
    ],
)
async def test_a_bad_auth0_setting_stops_the_start(
    build_app: Callable[..., web.Application], environ: dict[str, str], line: str
) -> None:
    from teleconsult.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as raised:  # as the app is built, before it starts
        build_app(**environ)
    assert str(raised.value) == line


@pytest.fixture(params=["auth0-client", "management-api"])
async def auth0_mode_client(
    request: pytest.FixtureRequest,
    make_client: MakeClient,
    aiohttp_server: Server,
    auth0_client_service: FakeAuth0Client,
    management: FakeManagementApi,
) -> Client:
    if request.param == "auth0-client":
        server = await aiohttp_server(auth0_client_service.app())
        return await make_client(AUTH_SERVICE=url(server))
    management.users.update(
        {
            "auth0|nurse": {
                "user_id": "auth0|nurse",
                "name": "Ann Lee",
                "app_metadata": {"groups": ["patient"]},
            }
        }
    )
    server = await aiohttp_server(management.app())
    return await make_client(
        AUTH0_DOMAIN="tenant.eu.auth0.com",
        AUTH0_BASE_URL=url(server),
        AUTH0_CLIENT_ID="m2m-client",
        AUTH0_CLIENT_SECRET="m2m-secret",
    )


async def test_the_usage_examples_in_auth0_mode(auth0_mode_client: Client) -> None:
    client = auth0_mode_client
    # All participants known, as an array of ids.
    await create(client, body(["auth0|doc", "auth0|pat", "auth0|nurse"]))
    # All known, object form with languages.
    await create(
        client,
        body({"number": 3, "data": [
            {"userExternalId": "auth0|doc", "language": "it"},
            {"userExternalId": "auth0|pat", "language": "it"},
            {"userExternalId": "auth0|nurse", "language": "it"},
        ]}),
    )  # fmt: skip
    assert len(fake_video(client).rooms) == 2
    # Some unknown, then added by id.
    room_id = await create(
        client,
        body({"number": 3, "data": [
            {"userExternalId": "auth0|doc", "language": "it"},
            {"userExternalId": "auth0|pat", "language": "it"},
        ]}),
    )  # fmt: skip
    assert len(fake_video(client).rooms) == 2
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data",
        json={"userExternalId": "auth0|nurse", "language": "it"},
    )
    assert response.status == 201
    assert len(fake_video(client).rooms) == 3
    _, answer = await join(client, room_id, "auth0|nurse")
    assert [p["fullName"] for p in answer["participantsBandyerCall"]] == [
        "Joe Smith",
        "Jane Doe",
        "Ann Lee",
    ]


# -- ids in the directories' paths ----------------------------------------------------------

ODD_IDS = ["auth0|a/b", "a%2F..%2Fb", "a b?c#d", "é@x.y", "...", "a..b"]
"""Ids a path could mangle (a slash, an encoded slash, a query, a fragment, dots): each must
arrive as one whole segment, exactly as given."""
REFUSED = "'.' and '..' (in any spelling) would be dropped from a URL path"


def dot_dot_crud() -> FakeUsersCrud:
    """A users CRUD that resolves `mallory` to `..` (and the patient as itself)."""
    return FakeUsersCrud(
        records=[{"_id": "mallory", "authUserId": ".."}, {"_id": "pat", "authUserId": "auth0|pat"}]
    )


def recording_root(app: web.Application, path: str, hits: list[str]) -> None:
    """`path` on `app` answers a document that reads as a doctor, and records who asked."""

    async def root(request: web.Request) -> web.Response:
        hits.append(request.headers.get("Authorization", ""))
        return web.json_response({"name": "Root Document", "groups": ["doctor"]})

    app.router.add_get(path, root)


async def test_odd_ids_reach_auth0_client_exactly_as_given(
    make_client: MakeClient, aiohttp_server: Server, auth0_client_service: FakeAuth0Client
) -> None:
    auth0_client_service.users = {user_id: {"groups": ["doctor"]} for user_id in ODD_IDS}
    server = await aiohttp_server(auth0_client_service.app())
    client = await make_client(AUTH_SERVICE=url(server))

    await create(client, body(ODD_IDS))

    assert sorted(r.path for r in auth0_client_service.received) == sorted(
        f"/users/{user_id}" for user_id in ODD_IDS
    )


async def test_odd_ids_reach_the_management_api_exactly_as_given(
    make_client: MakeClient, management_env: dict[str, str], management: FakeManagementApi
) -> None:
    management.users = {user_id: {"name": "x"} for user_id in ODD_IDS}
    management.roles = {user_id: ["doctor"] for user_id in ODD_IDS}
    client = await make_client(**management_env, AUTH0_GROUPS_SOURCE="roles")

    await create(client, body(ODD_IDS))

    lookups = sorted(r.path for r in management.received if r.method == "GET")
    assert lookups == sorted(
        path
        for user_id in ODD_IDS
        for path in (f"/api/v2/users/{user_id}", f"/api/v2/users/{user_id}/roles")
    )


async def test_an_id_resolved_to_dot_dot_is_not_auth0_clients_root_document(
    make_client: MakeClient, aiohttp_server: Server, auth0_client_service: FakeAuth0Client
) -> None:
    """`/users/..` is `/`: auth0-client's root document made `mallory` a doctor."""
    app = auth0_client_service.app()
    hits: list[str] = []
    recording_root(app, "/", hits)
    auth, users = await aiohttp_server(app), await aiohttp_server(dot_dot_crud().app())
    client = await make_client(
        AUTH_SERVICE=url(auth), CUSTOM_ID_USERS_API_ENDPOINT=url(users) + "/"
    )

    response = await client.post("/teleconsultation", json=body(["pat", "mallory"]))

    assert response.status == 502
    assert await response.json() == error(
        502,
        f"The auth0-client provider failed to look up a user: userId cannot be sent in a URL "
        f"path: {REFUSED}",
    )
    assert hits == []
    assert [r.path for r in auth0_client_service.received] == ["/users/auth0|pat"]


async def test_an_id_resolved_to_dot_dot_sends_the_m2m_token_nowhere_else(
    make_client: MakeClient,
    aiohttp_server: Server,
    management_env: dict[str, str],
    management: FakeManagementApi,
) -> None:
    """`/api/v2/users/..` is `/api/v2/`: the Management API token went to another path."""
    app = management.app()
    hits: list[str] = []
    recording_root(app, "/api/v2/", hits)
    server, users = await aiohttp_server(app), await aiohttp_server(dot_dot_crud().app())
    client = await make_client(
        **{**management_env, "AUTH0_BASE_URL": url(server)},
        CUSTOM_ID_USERS_API_ENDPOINT=url(users) + "/",
    )

    response = await client.post("/teleconsultation", json=body(["pat", "mallory"]))

    assert response.status == 502
    assert await response.json() == error(
        502,
        f"The auth0 provider failed to look up a user: userId cannot be sent in a URL path: "
        f"{REFUSED}",
    )
    assert hits == []
    assert [r.path for r in management.received if r.method == "GET"] == ["/api/v2/users/auth0|pat"]
