"""CORS (CORS_ALLOWED_ORIGINS): preflights, the headers of answers, and what stays as it was.

Through the HTTP API as a browser sends it: a preflight is an OPTIONS with `Origin`
and `Access-Control-Request-Method`; the actual request then carries `Origin`. The
browser itself is in tests/test_cors_browser.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import ClientResponse

from teleconsult.configuration.checks import web_origin
from teleconsult.configuration.settings import Settings
from teleconsult.errors import ConfigurationError, Unavailable
from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    MakeClient,
    create,
    error,
    teleconsultation,
)

FRONTEND = "https://app.example.org"
OTHER = "https://evil.example"
ALLOWED = {"CORS_ALLOWED_ORIGINS": f"{FRONTEND}, http://127.0.0.1:5173"}
REQUEST_HEADERS = (
    "authorization, content-type, idempotency-key, miausergroups, miauserid, x-request-id"
)
EXPOSED = "x-request-id, Idempotent-Replayed, Retry-After"
JSON = {"Content-Type": "application/json"}


def preflight(
    origin: str, method: str = "POST", headers: str = "content-type, miauserid"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def cors(response: ClientResponse) -> dict[str, str]:
    """The answer's CORS headers and its Vary: what a browser and a cache decide on."""
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    }


def granted(origin: str = FRONTEND) -> dict[str, str]:
    """The headers of an actual answer that a page of `origin` may read."""
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED,
        "Vary": "Origin",
    }


@pytest.fixture
async def api(make_client: MakeClient) -> Client:
    return await make_client(**ALLOWED)


# -- preflights ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/teleconsultation", "POST"),
        ("/teleconsultation/room-1", "DELETE, GET, PATCH"),
        ("/teleconsultation/room-1/participants/data", "POST"),
        ("/teleconsultation/room-1/uploads", "DELETE"),
        ("/credentials", "POST"),
        ("/settings/background-image", "POST"),
        ("/settings/update", "PATCH"),
        ("/teleconsultations", "GET"),
        ("/teleconsultation/room-1/audit", "GET"),
        ("/webhooks/failed", "GET"),
        ("/webhooks/failed/default.evt_1/retry", "POST"),
    ],
)
async def test_a_preflight_from_an_allowed_origin_names_the_route_methods_and_headers(
    api: Client, path: str, methods: str
) -> None:
    response = await api.options(path, headers=preflight(FRONTEND))
    assert response.status == 204
    assert await response.read() == b""
    assert cors(response) == {
        "Access-Control-Allow-Origin": FRONTEND,
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": REQUEST_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["x-request-id"]


async def test_each_listed_origin_is_answered_with_itself(api: Client) -> None:
    response = await api.options("/teleconsultation", headers=preflight("http://127.0.0.1:5173"))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5173"


@pytest.mark.parametrize(
    "origin",
    [
        OTHER,
        "https://app.example.org.evil.example",  # a listed origin as a prefix
        "http://app.example.org",  # another scheme
        "https://app.example.org:8443",  # another port
        "null",  # a sandboxed frame or a file
    ],
)
async def test_a_preflight_from_another_origin_is_a_403_without_allow_headers(
    api: Client, origin: str
) -> None:
    response = await api.options("/teleconsultation", headers=preflight(origin))
    assert response.status == 403
    assert await response.json() == error(
        403,
        f"The origin {origin} may not call this API from a browser: it is not in "
        "CORS_ALLOWED_ORIGINS.",
        code="origin_not_allowed",
    )
    assert cors(response) == {"Vary": "Origin"}


async def test_the_probes_documentation_and_provider_pages_answer_no_preflight(
    api: Client,
) -> None:
    for path in ["/-/healthz", "/-/ready", "/-/metrics", "/documentation/json"]:
        response = await api.options(path, headers=preflight(FRONTEND, "GET"))
        assert response.status == 405, path
        assert cors(response) == {}, path
    response = await api.options("/fake-video/join/abc", headers=preflight(FRONTEND, "GET"))
    assert response.status == 405
    assert cors(response) == {}
    response = await api.options("/nowhere", headers=preflight(FRONTEND))
    assert response.status == 404
    assert cors(response) == {}


async def test_an_options_that_is_no_preflight_is_still_a_405(api: Client) -> None:
    """Without Access-Control-Request-Method it is an ordinary OPTIONS: the route has none."""
    response = await api.options("/teleconsultation", headers={"Origin": FRONTEND})
    assert response.status == 405
    assert await response.json() == error(
        405, "OPTIONS is not allowed on /teleconsultation; use POST."
    )
    assert response.headers["Allow"] == "POST"
    assert cors(response) == granted()


# -- actual requests -----------------------------------------------------------------------------


async def test_an_allowed_origin_may_read_the_answer_and_its_request_id(api: Client) -> None:
    response = await api.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={"Origin": FRONTEND, "miauserid": "doctor-1", "x-request-id": "from-the-page"},
    )
    assert response.status == 201
    assert cors(response) == granted()
    assert response.headers["x-request-id"] == "from-the-page"
    room_id = (await response.json())["roomId"]

    response = await api.get(
        f"/teleconsultation/{room_id}", headers={"Origin": FRONTEND, "miauserid": "patient-1"}
    )
    assert response.status == 200
    assert cors(response) == granted()


async def test_another_origin_gets_the_answer_without_cors_headers(api: Client) -> None:
    """The browser then hides the answer from the page (the request itself is no preflighted
    one, so it was the service's rules, not CORS, that decided what it did)."""
    response = await api.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={"Origin": OTHER, "miauserid": "doctor-1"},
    )
    assert response.status == 201
    assert cors(response) == {"Vary": "Origin"}


async def test_every_answer_of_an_api_route_varies_on_origin(api: Client) -> None:
    """Also without an Origin (a server-side caller), so a cache never mixes them."""
    room_id = await create(api, teleconsultation(2, DOCTOR, PATIENT))
    response = await api.get(f"/teleconsultation/{room_id}", headers={"miauserid": "patient-1"})
    assert response.status == 200
    assert cors(response) == {"Vary": "Origin"}
    response = await api.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    assert cors(response) == {"Vary": "Origin"}
    for path in ["/-/healthz", "/documentation/json"]:
        response = await api.get(path, headers={"Origin": FRONTEND})
        assert response.status == 200
        assert cors(response) == {}, path


ERRORS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/teleconsultation", {"json": {}}, 400, "validation"),
    ("GET", "/teleconsultation/nope", {}, 401, "unauthorized"),
    ("GET", "/teleconsultation/nope", {"headers": {"miauserid": "doctor-1"}}, 404, "not_found"),
    ("PUT", "/teleconsultation", {}, 405, "method_not_allowed"),
    (
        "POST",
        "/teleconsultation",
        {"data": "x" * 70_000, "headers": JSON},
        413,
        "too_large",
    ),
    ("POST", "/teleconsultation", {"data": "a=b"}, 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    ERRORS,
    ids=[f"{status}-{code}" for _, _, _, status, code in ERRORS],
)
async def test_an_error_from_an_allowed_origin_is_readable_by_its_page(
    api: Client, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    sent = {**kwargs, "headers": {"Origin": FRONTEND, **kwargs.get("headers", {})}}
    response = await api.request(method, path, **sent)
    assert response.status == status
    assert (await response.json())["code"] == code
    assert cors(response) == granted()


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (Unavailable("The SQLite store failed: disk I/O error."), 503, "store_unavailable"),
        (RuntimeError("a bug"), 500, "internal"),
    ],
)
async def test_a_failure_from_an_allowed_origin_is_readable_by_its_page(
    api: Client,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    status: int,
    code: str,
) -> None:
    async def failing(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(api.app[SERVICES].service, "join", failing)
    response = await api.get(
        "/teleconsultation/room-1", headers={"Origin": FRONTEND, "miauserid": "doctor-1"}
    )
    assert response.status == status
    assert (await response.json())["code"] == code
    assert cors(response) == granted()


# -- what the settings change --------------------------------------------------------------------


async def test_unset_the_api_stays_same_origin_as_before(client: Client) -> None:
    response = await client.options("/teleconsultation", headers=preflight(FRONTEND))
    assert response.status == 405
    assert await response.json() == error(
        405, "OPTIONS is not allowed on /teleconsultation; use POST."
    )
    assert cors(response) == {}
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={"Origin": FRONTEND, "miauserid": "doctor-1"},
    )
    assert response.status == 201
    assert cors(response) == {}


async def test_the_allowed_headers_follow_the_caller_and_groups_headers(
    make_client: MakeClient,
) -> None:
    client = await make_client(
        USERID_HEADER_KEY="X-Caller", GROUPS_HEADER_KEY="X-Groups", **ALLOWED
    )
    response = await client.options("/teleconsultation", headers=preflight(FRONTEND))
    assert response.headers["Access-Control-Allow-Headers"] == (
        "authorization, content-type, idempotency-key, x-caller, x-groups, x-request-id"
    )
    configured = {
        "privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}},
        "userIdPathInRequest": [
            {"from": "headers", "extract": "object"},
            {"from": "MiaUserProperties", "extract": "object"},
            {"from": "customUserId", "extract": "json"},
        ],
    }
    client = await make_client(configured, **ALLOWED)
    response = await client.options("/teleconsultation", headers=preflight(FRONTEND))
    assert response.headers["Access-Control-Allow-Headers"] == (
        "authorization, content-type, idempotency-key, miausergroups, miauserproperties, "
        "x-request-id"
    )


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://app.example.org", "https://app.example.org"),
        ("HTTPS://App.Example.ORG", "https://app.example.org"),
        ("https://app.example.org:443", "https://app.example.org"),
        ("https://app.example.org:8443", "https://app.example.org:8443"),
        ("http://localhost:5173", "http://localhost:5173"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
        ("https://[2001:DB8::1]", "https://[2001:db8::1]"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
    ],
)
def test_an_origin_is_kept_as_browsers_send_it(text: str, origin: str) -> None:
    assert web_origin("CORS_ALLOWED_ORIGINS", text) == origin


def test_the_origins_are_a_comma_separated_list() -> None:
    settings = Settings.from_environ(
        {"CORS_ALLOWED_ORIGINS": " https://a.example.org ,,https://b.example.org:8443, "}
    )
    assert settings.http.cors_allowed_origins == {
        "https://a.example.org",
        "https://b.example.org:8443",
    }
    assert (
        Settings.from_environ({"CORS_ALLOWED_ORIGINS": " "}).http.cors_allowed_origins
        == frozenset()
    )


NOT_ORIGINS = "CORS_ALLOWED_ORIGINS must list origins such as https://app.example.org (a scheme, a host and a port if not the default); got {!r}."
WITH_PATH = "CORS_ALLOWED_ORIGINS must list origins without a path or a trailing slash; got {!r}."


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("*", "CORS_ALLOWED_ORIGINS lists exact origins (https://app.example.org); '*' is not accepted; got '*'."),
        ("https://*.example.org", "CORS_ALLOWED_ORIGINS lists exact origins (https://app.example.org); '*' is not accepted; got 'https://*.example.org'."),
        ("https://app.example.org/", WITH_PATH.format("https://app.example.org/")),
        ("https://app.example.org/app", WITH_PATH.format("https://app.example.org/app")),
        ("https://app.example.org?x=1", WITH_PATH.format("https://app.example.org?x=1")),
        ("https://app.example.org#top", WITH_PATH.format("https://app.example.org#top")),
        ("app.example.org", NOT_ORIGINS.format("app.example.org")),
        ("null", NOT_ORIGINS.format("null")),
        ("ftp://app.example.org", NOT_ORIGINS.format("ftp://app.example.org")),
        ("https://user@app.example.org", NOT_ORIGINS.format("https://user@app.example.org")),
        ("https://app.example.org:99999", NOT_ORIGINS.format("https://app.example.org:99999")),
        ("https://app example.org", NOT_ORIGINS.format("https://app example.org")),
        ("https://bücher.example", NOT_ORIGINS.format("https://bücher.example")),
        ("https://[1:2:3]", NOT_ORIGINS.format("https://[1:2:3]")),
        ("http://app.example.org", "CORS_ALLOWED_ORIGINS must list https origins (http is accepted for a loopback host only); got 'http://app.example.org'."),
        ("https://ok.example.org, https://bad.example.org/", WITH_PATH.format("https://bad.example.org/")),
    ],
)  # fmt: skip
def test_a_bad_origin_stops_the_start_with_one_line(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({"CORS_ALLOWED_ORIGINS": value})
    assert str(raised.value) == message
