"""The API document states the calling contract of the running service, and tools accept it.

What each operation accepts (security), the bounds and forms the providers enforce, the
dates, the 405 and `x-request-id` every operation shares, examples the server accepts as
they are; `openapi-spec-validator` and Redocly's linter (from npm, installed by the
Makefile into .venv/redocly) find nothing to say about the documents.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from teleconsult.cli import write_openapi
from tests.fake_auth0 import FakeAuth0Client
from tests.fake_jwks import AUDIENCE, ISSUER
from tests.helpers import (
    DOCTOR,
    JSON,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    create,
    error,
    fake_video,
    teleconsultation,
)

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_FILE = ROOT / "openapi" / "openapi.json"
REDOCLY = Path(sys.prefix) / "redocly" / "node_modules" / ".bin" / "redocly"
REDOCLY_CONFIG = Path(__file__).with_name("redocly") / "redocly.yaml"
PROBES: dict[str, list[Any]] = {
    "getLiveness": [],
    "getReadiness": [],
    "getCheckUp": [],
    "getMetrics": [],
    "receiveProviderEvents": [],  # signed by the provider, not sent by a caller
    "fhirCapabilityStatement": [],  # FHIR's metadata: public
}
WRITES = (
    "createTeleconsultation",
    "updateTeleconsultation",
    "addParticipant",
    "deleteTeleconsultation",
    "deleteUploads",
)
OPERATOR_CALLS = ("uploadBackground", "updateSettings", "listFailedWebhooks", "retryFailedWebhook")
"""For ADMIN_GROUPS only: the caller's id and groups together, never anonymous."""
REVOCATIONS = ("revokeParticipantLink", "removeParticipant", "unblockParticipant")
"""A participant for themselves (their own link), or a manager: the caller's id, never
anonymous, with the groups for more."""
TOKENS = {
    "JWT_JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json",  # fetched at the first token
    "JWT_AUDIENCE": AUDIENCE,
    "JWT_ISSUER": ISSUER,
}
AUTH0_USERS = {
    "doctor-1": {"name": "Joe Smith", "groups": ["doctor"]},
    "patient-1": {"name": "Jane Doe", "groups": ["patient"]},
}


async def served_document(client: Client) -> dict[str, Any]:
    response = await client.get("/documentation/json")
    assert response.status == 200
    document: dict[str, Any] = await response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            yield path, method, operation


def security(document: dict[str, Any]) -> dict[str, Any]:
    return {op["operationId"]: op["security"] for _, _, op in operations(document)}


def schemes(document: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each security scheme as (type, where, name) or (type, scheme, format)."""
    return {
        name: (s["type"], s["in"], s["name"])
        if s["type"] == "apiKey"
        else (s["type"], s["scheme"], s["bearerFormat"])
        for name, s in document["components"]["securitySchemes"].items()
    }


@pytest.fixture
async def auth0_client(make_client: MakeClient, aiohttp_server: Server) -> Client:
    """The auth0 identity provider, which resolves ids, on a fake auth0-client."""
    server = await aiohttp_server(FakeAuth0Client(users=dict(AUTH0_USERS)).app())
    return await make_client(
        AUTH_SERVICE=str(server.make_url("")).rstrip("/"),
        ADMIN_GROUPS="ops",  # so that its operator can send the settings' example
    )


# -- security ---------------------------------------------------------------------------------


async def test_the_caller_id_header_is_the_security_scheme_while_tokens_are_not_verified(
    client: Client,
) -> None:
    document = await served_document(client)
    assert schemes(document) == {"callerId": ("apiKey", "header", "miauserid")}
    anonymous_writes: list[dict[str, list[str]]] = [
        {"callerId": []},
        {},
    ]  # while ALLOW_ANONYMOUS_WRITES is true, as the tests' apps have it
    caller_only: list[dict[str, list[str]]] = [{"callerId": []}]  # never anonymous
    assert security(document) == {
        **PROBES,
        "getTeleconsultation": [{"callerId": []}],
        "createCredentials": [{"callerId": []}],
        "listTeleconsultations": [{"callerId": []}],
        "getAuditTrail": [{"callerId": []}],
        **dict.fromkeys(REVOCATIONS, caller_only),
        **dict.fromkeys(WRITES, anonymous_writes),
        **dict.fromkeys(OPERATOR_CALLS, caller_only),
    }
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR))
    assert response.status == 201  # without the header, as `{}` says


async def test_the_groups_header_is_a_scheme_when_manager_groups_read_it(
    make_client: MakeClient,
) -> None:
    client = await make_client(MANAGER_GROUPS="managers")
    document = await served_document(client)

    assert schemes(document) == {
        "callerId": ("apiKey", "header", "miauserid"),
        "callerGroups": ("apiKey", "header", "miausergroups"),
    }
    writes: list[dict[str, list[str]]] = [
        {"callerId": [], "callerGroups": []},
        {"callerGroups": []},
    ]
    operators: list[dict[str, list[str]]] = [{"callerId": [], "callerGroups": []}]
    # a manager's groups let them list anyone's and read audit trails
    manager_reads: list[dict[str, list[str]]] = [
        {"callerId": []},
        {"callerId": [], "callerGroups": []},
    ]
    assert security(document) == {
        **PROBES,
        "getTeleconsultation": [{"callerId": []}],
        "createCredentials": [{"callerId": []}],
        **dict.fromkeys(("listTeleconsultations", "getAuditTrail", *REVOCATIONS), manager_reads),
        **dict.fromkeys(WRITES, writes),
        **dict.fromkeys(OPERATOR_CALLS, operators),
    }
    body = teleconsultation(2, DOCTOR)
    response = await client.post("/teleconsultation", json=body, headers={"miauserid": "d"})
    assert response.status == 403  # the caller's id alone is not enough
    assert (await response.json())["code"] == "forbidden"
    for headers in (
        {"miauserid": "doctor-1", "miausergroups": "managers"},
        {"miausergroups": "managers"},  # anonymous writes are allowed, a manager's
    ):
        await create(client, body, headers)


async def test_admin_groups_make_the_groups_header_optional_and_names_follow_the_settings(
    make_client: MakeClient,
) -> None:
    client = await make_client(
        ADMIN_GROUPS="admins",
        ALLOW_ANONYMOUS_WRITES="false",
        USERID_HEADER_KEY="x-user",
        GROUPS_HEADER_KEY="x-groups",
    )
    document = await served_document(client)

    assert schemes(document) == {
        "callerId": ("apiKey", "header", "x-user"),
        "callerGroups": ("apiKey", "header", "x-groups"),
    }
    writes: list[dict[str, list[str]]] = [{"callerId": [], "callerGroups": []}, {"callerId": []}]
    assert security(document)["createTeleconsultation"] == writes
    assert security(document)["listFailedWebhooks"] == [{"callerId": [], "callerGroups": []}]
    body = teleconsultation(2, DOCTOR)
    response = await client.post("/teleconsultation", json=body, headers={"x-groups": "admins"})
    assert response.status == 403  # no anonymous writes: no requirement without callerId
    await create(client, body, {"x-user": "doctor-1"})


async def test_a_bearer_jwt_is_the_only_scheme_when_tokens_are_verified(
    make_client: MakeClient,
) -> None:
    client = await make_client(**TOKENS)
    document = await served_document(client)

    assert schemes(document) == {"bearerToken": ("http", "bearer", "JWT")}
    assert security(document) == {
        **PROBES,
        **{
            name: [{"bearerToken": []}]
            for name in (
                *WRITES,
                *OPERATOR_CALLS,
                *REVOCATIONS,
                "getTeleconsultation",
                "createCredentials",
                "listTeleconsultations",
                "getAuditTrail",
            )
        },
    }
    response = await client.post(
        "/teleconsultation", json=teleconsultation(2, DOCTOR), headers={"miauserid": "doctor-1"}
    )
    assert response.status == 401  # the header names nobody once tokens are verified
    assert await response.json() == error(
        401, "A bearer token is required (Authorization: Bearer <token>).", "Unauthorized user"
    )


async def test_the_scheme_header_is_what_gives_a_participant_their_link(
    client: Client, clock: FrozenClock
) -> None:
    """What Swagger UI's "Try it out" sends once the caller id is given in Authorize."""
    document = await served_document(client)
    header = document["components"]["securitySchemes"]["callerId"]["name"]
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)  # the call is due: the room is locked, links are handed out

    response = await client.get(f"/teleconsultation/{room_id}", headers={header: "patient-1"})

    assert response.status == 200
    link = (await response.json())["accessLinkURL"]
    assert re.fullmatch(r"http://127\.0\.0\.1:3000/fake-video/join/[\w-]+\?l=it", link), link
    response = await client.get(f"/teleconsultation/{room_id}")
    assert response.status == 401


# -- what the server enforces -------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "low", "high"), [("fake", 2, 25), ("webrtc", 2, 4)])
async def test_participants_number_is_within_the_video_providers_limits(
    make_client: MakeClient, provider: str, low: int, high: int
) -> None:
    client = await make_client(VIDEO_PROVIDER=provider)
    schemas = (await served_document(client))["components"]["schemas"]
    participants = schemas["ParticipantsObject"]["properties"]
    assert (participants["number"]["minimum"], participants["number"]["maximum"]) == (low, high)
    assert participants["data"]["maxItems"] == high

    for number in (low - 1, high + 1):
        response = await client.post("/teleconsultation", json=teleconsultation(number, DOCTOR))
        assert response.status == 400
        assert await response.json() == error(
            400,
            f"participants.number must be between {low} and {high} for this video provider; "
            f"got {number}.",
            path="participants.number",
        )
    for number in (low, high):
        await create(client, teleconsultation(number, DOCTOR))


async def test_the_array_of_ids_is_documented_only_when_the_identity_provider_resolves_ids(
    client: Client, auth0_client: Client
) -> None:
    static = (await served_document(client))["components"]["schemas"]
    assert static["CreateTeleconsultation"]["properties"]["participants"]["allOf"] == [
        {"$ref": "#/components/schemas/ParticipantsObject"}
    ]
    assert "oneOf" not in static["UpdateTeleconsultation"]["properties"]["participants"]
    body = {**teleconsultation(2), "participants": ["doctor-1", "patient-1"]}
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 400
    assert await response.json() == error(
        400,
        "participants as an array of user ids needs an identity provider that knows the users; "
        "the 'static' identity provider does not. Send "
        '{"number": n, "data": [{"userExternalId", "groups", "fullName"}]} instead.',
        path="participants",
    )

    resolving = (await served_document(auth0_client))["components"]["schemas"]
    for schema in ("CreateTeleconsultation", "UpdateTeleconsultation"):
        ids, known = resolving[schema]["properties"]["participants"]["oneOf"]
        assert (ids["type"], ids["minItems"], ids["maxItems"]) == ("array", 2, 25)
        assert known == {"$ref": "#/components/schemas/ParticipantsObject"}


async def test_expires_in_is_within_the_providers_credential_bounds(client: Client) -> None:
    schemas = (await served_document(client))["components"]["schemas"]
    expires_in = schemas["CredentialsRequest"]["properties"]["expiresIn"]
    shortest, longest = fake_video(client).credentials_seconds
    assert (expires_in["minimum"], expires_in["maximum"]) == (shortest, longest)
    response = await client.post(
        "/credentials", json={"expiresIn": longest + 1}, headers={"miauserid": "doctor-1"}
    )
    assert response.status == 400


async def test_limited_rooms_bound_the_duration(make_client: MakeClient) -> None:
    client = await make_client(UNLIMITED_TELECONSULTATION="false")
    schemas = (await served_document(client))["components"]["schemas"]
    duration = schemas["CreateTeleconsultation"]["properties"]["duration_in_seconds"]
    assert (duration["minimum"], duration["maximum"]) == (300, 24 * 3600)
    body = {**teleconsultation(2, DOCTOR), "duration_in_seconds": 299}
    del body["end_date"]
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 400


async def test_every_date_is_a_date_time(client: Client) -> None:
    schemas = (await served_document(client))["components"]["schemas"]
    dates = {
        (schema, name): field.get("format")
        for schema, body in schemas.items()
        for name, field in body.get("properties", {}).items()
        if re.search(r"(_date|At|Date)$", name)
    }
    assert dates == {
        ("CreateTeleconsultation", "start_date"): "date-time",
        ("CreateTeleconsultation", "end_date"): "date-time",
        ("UpdateTeleconsultation", "start_date"): "date-time",
        ("UpdateTeleconsultation", "end_date"): "date-time",
        ("Credentials", "expiresAt"): "date-time",
        ("Background", "creation_date"): "date-time",
        ("FailedWebhook", "occurredAt"): "date-time",
        ("FailedWebhook", "failedAt"): "date-time",
        ("ListedTeleconsultation", "start_date"): "date-time",
        ("ListedTeleconsultation", "end_date"): "date-time",
        ("ListedTeleconsultation", "createdAt"): "date-time",
        ("ListedTeleconsultation", "updatedAt"): "date-time",
        ("ParticipantEventData", "startDate"): "date-time",
        ("ParticipantEventData", "endDate"): "date-time",
        ("ParticipantEventData", "updatedAt"): "date-time",
    }


async def test_every_operation_documents_405_and_the_request_id_both_ways(
    client: Client,
) -> None:
    document = await served_document(client)
    for _, _, operation in operations(document):
        assert {"$ref": "#/components/parameters/RequestId"} in operation["parameters"]
        assert operation["responses"]["405"]["headers"]["Allow"]
        for response in operation["responses"].values():
            assert response["headers"]["x-request-id"] == {"$ref": "#/components/headers/RequestId"}
    assert document["components"]["parameters"]["RequestId"]["name"] == "x-request-id"

    response = await client.post("/-/healthz", headers={"x-request-id": "trace-1"})
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.headers["x-request-id"] == "trace-1"
    assert await response.json() == error(
        405, "POST is not allowed on /-/healthz; use GET, HEAD.", code="method_not_allowed"
    )


async def test_413_and_415_are_documented_where_a_body_is_read(client: Client) -> None:
    document = await served_document(client)
    for path, method, operation in operations(document):
        reads_a_body = "requestBody" in operation
        # a provider's event is read as it comes, whatever its type: the signature covers it
        parses_it = reads_a_body and operation["operationId"] != "receiveProviderEvents"
        assert ("413" in operation["responses"]) == reads_a_body, (method, path)
        assert ("415" in operation["responses"]) == parses_it, (method, path)

    response = await client.post(
        "/credentials", data="{}", headers={"miauserid": "doctor-1", "Content-Type": "text/plain"}
    )
    assert response.status == 415
    response = await client.patch(
        "/teleconsultation/0123456789abcdef01234567",
        data=json.dumps({"start_date": "x" * 70_000}),
        headers={**JSON, "miauserid": "doctor-1"},
    )
    assert response.status == 413


async def test_delete_documents_what_it_really_does(client: Client) -> None:
    document = await served_document(client)
    delete = document["paths"]["/teleconsultation/{roomId}"]["delete"]
    assert sorted(delete["responses"]) == [
        "204",
        "400",
        "401",
        "403",
        "404",
        "405",
        "409",
        "503",
        "504",
    ]  # fmt: skip: never 502: a provider's failure leaves the deletion to the reconciler
    assert "reconciler" in delete["description"]


# -- examples ---------------------------------------------------------------------------------


def examples(document: dict[str, Any]) -> dict[str, list[Any]]:
    """The request examples of each operation, in the document's order."""
    found = {}
    for _, _, operation in operations(document):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "examples" in content:
            found[operation["operationId"]] = [e["value"] for e in content["examples"].values()]
    return found


async def send_each_example(client: Client, document: dict[str, Any]) -> None:
    """Every documented example, sent as it is (by the doctor; the settings by an operator), is
    accepted."""
    by_operation = examples(document)
    assert sorted(by_operation) == [
        "addParticipant",
        "createCredentials",
        "createTeleconsultation",
        "updateSettings",
        "updateTeleconsultation",
    ]
    doctor = {"miauserid": "doctor-1"}
    created = []
    for body in by_operation["createTeleconsultation"]:
        created.append(await create(client, body, doctor))
    room_id = created[0]  # the first example leaves a participant to add
    [patient] = by_operation["addParticipant"]
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data", json=patient, headers=doctor
    )
    assert response.status == 201, await response.text()
    for body in by_operation["updateTeleconsultation"]:
        response = await client.patch(f"/teleconsultation/{room_id}", json=body, headers=doctor)
        assert response.status == 204, await response.text()
    [credentials] = by_operation["createCredentials"]
    response = await client.post("/credentials", json=credentials, headers=doctor)
    assert response.status == 201, await response.text()
    [settings] = by_operation["updateSettings"]
    fake_video(client).backgrounds[settings["background_alias"]] = "background.jpg"
    operator = {**doctor, "miausergroups": "ops"}  # in ADMIN_GROUPS: the company's settings
    response = await client.patch("/settings/update", json=settings, headers=operator)
    assert response.status == 200, await response.text()


async def test_every_example_is_accepted_as_it_is(make_client: MakeClient) -> None:
    client = await make_client(ADMIN_GROUPS="ops")
    document = await served_document(client)
    create_examples = examples(document)["createTeleconsultation"]
    assert [("end_date" in body, "duration_in_seconds" in body) for body in create_examples] == [
        (True, False),
        (False, True),
    ]  # one or the other, never both
    await send_each_example(client, document)


async def test_every_example_is_accepted_by_an_identity_provider_that_resolves_ids(
    auth0_client: Client,
) -> None:
    document = await served_document(auth0_client)
    assert examples(document)["createTeleconsultation"][2]["participants"] == [
        "doctor-1",
        "patient-1",
    ]
    await send_each_example(auth0_client, document)


# -- the tools ----------------------------------------------------------------------------------


async def lint(document: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Redocly's lint report of `document` (JSON), with the project's rules."""
    path = folder / "openapi.json"
    path.write_text(json.dumps(document))
    assert REDOCLY.exists(), "install the linter with `make .venv/redocly/.installed`"
    process = await asyncio.create_subprocess_exec(
        str(REDOCLY), "lint", "--config", str(REDOCLY_CONFIG), "--format", "json", str(path),
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    report: dict[str, Any] = json.loads(stdout)
    assert process.returncode == 0, (report, stderr.decode())
    return report


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"VIDEO_PROVIDER": "webrtc", "MANAGER_GROUPS": "managers", "ADMIN_GROUPS": "admins"},
        TOKENS,
    ],
    ids=["fake", "groups", "tokens"],
)
async def test_the_served_documents_are_valid_and_lint_clean(
    make_client: MakeClient, tmp_path: Path, environ: dict[str, str]
) -> None:
    document = await served_document(await make_client(**environ))
    validate(document)
    report = await lint(document, tmp_path)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]


async def test_the_checked_in_document_is_valid_lint_clean_and_current(
    auth0_client: Client, tmp_path: Path
) -> None:
    checked_in = json.loads(OPENAPI_FILE.read_text())
    await asyncio.to_thread(write_openapi, tmp_path / "written.json")  # it runs its own loop
    assert json.loads((tmp_path / "written.json").read_text()) == checked_in, "run make openapi"
    validate(checked_in)
    report = await lint(checked_in, tmp_path)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]
    resolving = await served_document(auth0_client)  # the oneOf of participants
    validate(resolving)
    report = await lint(resolving, tmp_path)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]
