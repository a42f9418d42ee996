"""Probes: alive, and ready only while the store answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teleconsult import __version__
from teleconsult.app import create_app
from teleconsult.configuration.secrets import placeholder_variables
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import DEFAULTS, Settings
from teleconsult.errors import Unavailable
from teleconsult.services import SERVICES
from tests.helpers import DOCTOR, PATIENT, AppClient, Client, MakeClient, error, teleconsultation

OPENAPI_FILE = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


async def test_healthz(client: Client) -> None:
    response = await client.get("/-/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "OK", "name": "teleconsult", "version": __version__}


async def test_ready_while_the_store_answers(client: Client) -> None:
    response = await client.get("/-/ready")
    assert response.status == 200
    assert await response.json() == {"status": "OK", "name": "teleconsult", "version": __version__}


async def test_not_ready_when_the_store_fails(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise Unavailable("The SQLite store failed: disk I/O error.")

    monkeypatch.setattr(client.app[SERVICES].store.health, "ping", broken)

    response = await client.get("/-/ready")
    assert response.status == 503
    assert await response.json() == {"status": "KO", "name": "teleconsult", "version": __version__}
    response = await client.get("/-/healthz")
    assert response.status == 200


async def test_the_api_documentation_is_served(client: Client) -> None:
    response = await client.get("/documentation/json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"] == "3.0.3"
    assert sorted(spec["paths"]) == [
        "/-/check-up",
        "/-/healthz",
        "/-/metrics",
        "/-/ready",
        "/credentials",
        "/fhir/R4/metadata",
        "/providers/{name}/events",
        "/settings/background-image",
        "/settings/update",
        "/teleconsultation",
        "/teleconsultation/{roomId}",
        "/teleconsultation/{roomId}/audit",
        "/teleconsultation/{roomId}/participants/data",
        "/teleconsultation/{roomId}/participants/{userExternalId}/block",
        "/teleconsultation/{roomId}/participants/{userExternalId}/link",
        "/teleconsultation/{roomId}/uploads",
        "/teleconsultations",
        "/webhooks/failed",
        "/webhooks/failed/{id}/retry",
    ]
    response = await client.get("/documentation/")
    assert response.status == 200


async def test_documentation_without_its_slash_redirects(client: Client) -> None:
    response = await client.get("/documentation", allow_redirects=False)
    assert response.status == 308
    assert response.headers["Location"] == "/documentation/"


@pytest.mark.parametrize("path", ["/-/healthz", "/-/ready", "/-/check-up"])
async def test_probes_answer_head(client: Client, path: str) -> None:
    response = await client.head(path)
    assert response.status == 200
    assert await response.read() == b""


async def test_the_checked_in_openapi_document_is_the_served_one(make_client: MakeClient) -> None:
    """The checked-in document is the default configuration's (the tests' apps run on fake and
    allow anonymous writes)."""
    checked_in = json.loads(OPENAPI_FILE.read_text())
    client = await make_client(
        VIDEO_PROVIDER=DEFAULTS["VIDEO_PROVIDER"],
        ALLOW_ANONYMOUS_WRITES=DEFAULTS["ALLOW_ANONYMOUS_WRITES"],
    )
    response = await client.get("/documentation/json")
    assert await response.json() == checked_in, "run `make openapi` and commit openapi/openapi.json"
    for path_item in checked_in["paths"].values():
        for operation in path_item.values():
            assert operation["responses"], operation
            assert "produces" not in operation


async def test_the_service_starts_and_answers_503_while_mongodb_is_down(
    app_client: AppClient,
) -> None:
    environ = {"STORE_URL": "mongodb://127.0.0.1:9/teleconsult", "MONGODB_TIMEOUT_MS": "200"}
    app = create_app(Settings.from_environ(environ), load_config(None), environ=environ)
    client = await app_client(app)

    assert (await client.get("/-/healthz")).status == 200
    response = await client.get("/-/ready")
    assert response.status == 503
    body = teleconsultation(2, DOCTOR, PATIENT)
    response = await client.post("/teleconsultation", json=body, headers={"miauserid": "d"})
    assert response.status == 503
    assert await response.json() == error(
        503,
        "The MongoDB store cannot be reached (ServerSelectionTimeoutError); retry later.",
        code="store_unavailable",
    )


CALL_PAGES_AND_DOCUMENTATION = ("/documentation", "/fake-video", "/webrtc/", "/janus/")
"""Routes that are pages for browsers (the call pages of each provider, Swagger UI), not API."""


async def test_the_document_covers_every_api_route(client: Client) -> None:
    spec = await (await client.get("/documentation/json")).json()
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    served = {
        (route.resource.canonical, route.method)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"  # implied by GET
        and not route.resource.canonical.startswith(CALL_PAGES_AND_DOCUMENTATION)
        and not _described_by_the_capability_statement(route.resource.canonical)
    }
    assert served == documented


def _described_by_the_capability_statement(path: str) -> bool:
    """The FHIR routes, which the CapabilityStatement describes (`/fhir/R4/metadata`, the one
    FHIR route in the document, links it): FHIR clients read that, not OpenAPI."""
    return path.startswith("/fhir/R4/") and path != "/fhir/R4/metadata"


async def test_a_placeholder_secret_keeps_the_replica_out_of_the_load_balancer(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The shipped examples set every secret to CHANGE_ME: deployed as they are, nothing is
    served, and the probes say which variables to fill in (never a value)."""
    client = await make_client(
        VIDEO_PROVIDER="fake", BANDYER_API_SECRET_KEY="CHANGE_ME", AUTH0_CLIENT_SECRET="<change-me>"
    )
    ko = {
        "status": "KO",
        "name": "teleconsult",
        "version": __version__,
        "placeholders": ["AUTH0_CLIENT_SECRET", "BANDYER_API_SECRET_KEY"],
    }
    for path in ("/-/ready", "/-/check-up"):
        response = await client.get(path)
        assert (response.status, await response.json()) == (503, ko)
    response = await client.get("/-/healthz")
    assert response.status == 200  # alive: a restart would not help
    assert "AUTH0_CLIENT_SECRET, BANDYER_API_SECRET_KEY still set to a placeholder" in caplog.text


def test_only_placeholder_values_count() -> None:
    environ = {"A": "CHANGE_ME", "B": "change-me", "C": "changed-me", "D": "", "E": "secret"}
    assert placeholder_variables(environ) == ("A", "B")


async def test_a_placeholder_in_a_mounted_secret_file_counts_too(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A Secret made from the shipped examples and mounted as files (`<NAME>_FILE`) is no
    more ready than one in the environment."""
    placeholder, real = tmp_path / "placeholder", tmp_path / "real"
    placeholder.write_text("CHANGE_ME\n")
    real.write_text("a-real-secret-of-32-characters-or-more\n")
    client = await make_client(
        BANDYER_API_SECRET_KEY_FILE=str(placeholder),
        AUTH0_CLIENT_SECRET_FILE=str(real),
        LIVEKIT_API_SECRET_FILE=str(tmp_path / "missing"),  # not judged here: reading says why
    )
    for path in ("/-/ready", "/-/check-up"):
        response = await client.get(path)
        assert (response.status, await response.json()) == (
            503,
            {
                "status": "KO",
                "name": "teleconsult",
                "version": __version__,
                "placeholders": ["BANDYER_API_SECRET_KEY_FILE"],
            },
        )
    assert (
        placeholder_variables({"OTHER_FILE": str(placeholder)}, ["BANDYER_API_SECRET_KEY"]) == ()
    )  # only a secret's file is read


async def test_the_document_names_every_operation_and_says_how_to_call(client: Client) -> None:
    spec = await (await client.get("/documentation/json")).json()
    operations = [operation for path in spec["paths"].values() for operation in path.values()]
    ids = [operation["operationId"] for operation in operations if "operationId" in operation]
    gets_and_writes = [op for op in operations if op.get("summary")]
    assert len(ids) == len(set(ids))  # unique: generated clients name methods after them
    assert {"createTeleconsultation", "getTeleconsultation", "deleteTeleconsultation"} <= set(ids)
    assert [op["summary"] for op in gets_and_writes if "operationId" not in op] == []
    assert spec["info"]["description"].startswith("Video teleconsultations")
    assert spec["servers"] == [
        {"url": "/", "description": "This service, where the document is served."}
    ]
