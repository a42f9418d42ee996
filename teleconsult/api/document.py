"""The OpenAPI document states the calling contract of the running service.

aiohttp-apigami builds the document from the routes and schemas; it is finished in two
steps, each with what is known by then:

- when the app is built (`finish`): the security schemes of the trust mode the settings
  choose (the caller-id header, with the groups header when a rule reads it, or a bearer
  JWT when JWT_AUDIENCE is set) and what each operation accepts; the 405 any path can
  answer; the `x-request-id` header of every request and answer;
- when the app starts, once its providers are open (`describe_providers`, an on_startup
  step): `participants.number` within the video provider's limits, the array-of-ids
  form only when the identity provider resolves ids, `expiresIn` within the provider's
  credential bounds, durations within its room bounds when rooms are limited, and
  request examples the server accepts as they are.

So the served document follows the running configuration; `teleconsult openapi` starts
the app with the default one (on a temporary store) to write the checked-in document.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_apigami.constants import SWAGGER_DICT

from teleconsult.api.auth import user_id_header
from teleconsult.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from teleconsult.api.idempotency import REPLAYED
from teleconsult.api.observe import REQUEST_ID_HEADER
from teleconsult.configuration.service_config import PathStep
from teleconsult.configuration.settings import Settings
from teleconsult.core.domain import MIN_DURATION_SECONDS, ProviderLimits, RoomPolicy
from teleconsult.providers.protocols import SdkCredentials
from teleconsult.services import SERVICES

CALLER_ID = "callerId"
CALLER_GROUPS = "callerGroups"
BEARER = "bearerToken"
PUBLIC_PREFIX = "/-/"
"""Probes and metrics: served to anyone (a load balancer, Prometheus)."""
CALLER_ONLY = frozenset({"getTeleconsultation", "createCredentials"})
"""Operations that need the caller's id and never a manager."""
SIGNED_BY_PROVIDER = frozenset({"receiveProviderEvents"})
"""Called by the video provider's servers, who sign each request (the provider's own scheme,
checked by its plugin): no caller's header or token."""
OPEN_TO_ANYONE = frozenset({"fhirCapabilityStatement"})
"""What the FHIR interface supports (`/fhir/R4/metadata`): public, as FHIR clients expect."""
MANAGER_READS = frozenset({"listTeleconsultations", "getAuditTrail"})
"""Reads that need the caller's id, and a manager's groups for more (anyone's listing, audit
trails): every other operation writes."""
PARTICIPANT_OR_MANAGER = frozenset(
    {"revokeParticipantLink", "removeParticipant", "unblockParticipant"}
)
"""Writes a participant may make for themselves (their own link), and a manager's groups
for more (issue 30)."""
OPERATOR_CALLS = frozenset(
    {"listFailedWebhooks", "retryFailedWebhook", "uploadBackground", "updateSettings"}
)
"""The operator routes: the caller's id and an ADMIN_GROUPS member's groups, together (nobody
may call them while ADMIN_GROUPS is unset)."""
SCHEMAS = "#/components/schemas/"
JSON = "application/json"

START = "2030-02-22T15:30:00.000Z"
END = "2030-02-22T16:30:00.000Z"
DOCTOR = {"userExternalId": "doctor-1", "groups": ["doctor"], "fullName": "Joe Smith"}
PATIENT = {"userExternalId": "patient-1", "groups": ["patient"], "fullName": "Jane Doe"}
BACKGROUND_ALIAS = "bg-1a2b3c4d"


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document the app serves at /documentation/json."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotAppKeyWarning)  # aiohttp-apigami's plain str key
        document: dict[str, Any] = app[SWAGGER_DICT]
    return document


async def started_document(app: web.Application) -> dict[str, Any]:
    """The document `app` serves once started (its providers open), without listening."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        return copy.deepcopy(openapi_document(app))
    finally:
        await runner.cleanup()


# -- when the app is built -------------------------------------------------------------------


def finish(
    document: dict[str, Any], settings: Settings, user_id_path: tuple[PathStep, ...]
) -> None:
    """What the settings decide: security, and what every operation shares."""
    components = document.setdefault("components", {})
    schemes, caller, writer = _security(settings, user_id_path)
    manager_reader = caller + ([_together(schemes)] if CALLER_GROUPS in schemes else [])
    operator = caller if settings.tokens.verifies else [_together(schemes)]
    security_of = {
        **dict.fromkeys(CALLER_ONLY, caller),
        **dict.fromkeys(MANAGER_READS | PARTICIPANT_OR_MANAGER, manager_reader),
        **dict.fromkeys(OPERATOR_CALLS, operator),
        **{name: [] for name in SIGNED_BY_PROVIDER | OPEN_TO_ANYONE},
    }
    components["securitySchemes"] = schemes
    components.setdefault("parameters", {})["RequestId"] = {
        "in": "header",
        "name": REQUEST_ID_HEADER,
        "required": False,
        "schema": {"type": "string"},
        "description": "Names the request in the logs (`reqId`) and comes back in the answer. "
        "Kept when it is 1 to 128 of `A-Z a-z 0-9 . _ : -`; otherwise a new id is made.",
    }
    components["headers"] = {
        "RequestId": {
            "schema": {"type": "string"},
            "description": "The request's id in the logs: the one sent, or a new one.",
        },
        "Allow": {"schema": {"type": "string"}, "description": "The methods the path allows."},
        "Replayed": {
            "schema": {"type": "string", "enum": ["true"]},
            "description": f"This is the stored answer of an earlier request with the same "
            f"{IDEMPOTENCY_HEADER}; nothing was done again.",
        },
    }
    document["info"]["license"] = {
        "name": "Apache-2.0",
        "url": "https://www.apache.org/licenses/LICENSE-2.0",
    }
    for path, path_item in document["paths"].items():
        path_item.pop("head", None)  # implied by GET (RFC 9110): one operationId per operation
        for operation in path_item.values():
            operation.pop("produces", None)  # Swagger 2 keys aiohttp-apigami adds
            operation.pop("consumes", None)
            public = path.startswith(PUBLIC_PREFIX)
            operation["security"] = (
                [] if public else security_of.get(operation["operationId"], writer)
            )
            _add_shared(operation)


Requirement = dict[str, list[str]]
"""One way to call an operation: the schemes it needs together (OpenAPI's security requirement)."""


def _security(
    settings: Settings, user_id_path: tuple[PathStep, ...]
) -> tuple[dict[str, Any], list[Requirement], list[Requirement]]:
    """The schemes, and what a caller-only operation and a write accept (alternatives)."""
    tokens = settings.tokens
    if tokens.verifies:
        bearer = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An RS256 JWT for audience `{tokens.audience}` from issuer "
            f"`{tokens.issuer}`: the caller is its `{tokens.user_id_claim}` claim, "
            f"their groups its `{tokens.groups_claim}` claim. Headers do not identify "
            "the caller; a missing or invalid token is a 401.",
        }
        return {BEARER: bearer}, [{BEARER: []}], [{BEARER: []}]
    schemes: dict[str, Any] = {}
    header = user_id_header(user_id_path)
    if header is not None:
        where = "" if len(user_id_path) == 2 else " (read at `userIdPathInRequest` in its value)"
        schemes[CALLER_ID] = {
            "type": "apiKey",
            "in": "header",
            "name": header,
            "description": f"The caller's id{where}, as the gateway in front of the service "
            "sets it: tokens are not verified, the header is trusted.",
        }
    groups_required = bool(settings.access.manager_groups)
    if groups_required or settings.access.admin_groups:  # else nothing reads the header
        schemes[CALLER_GROUPS] = {
            "type": "apiKey",
            "in": "header",
            "name": settings.access.groups_header_key,
            "description": "The caller's groups, comma-separated: "
            + (
                "writes need one of MANAGER_GROUPS."
                if groups_required
                else "members of ADMIN_GROUPS may change any teleconsultation and call the "
                "operator routes."
            ),
        }
    caller: list[Requirement] = [{CALLER_ID: []}] if header is not None else [{}]
    with_groups = _together(schemes)
    writer = [with_groups]
    if CALLER_GROUPS in schemes and not groups_required and header is not None:
        writer.append({CALLER_ID: []})  # an admin's groups are optional
    if settings.access.allow_anonymous_writes:  # each way again, without the caller's id
        writer += [{k: v for k, v in r.items() if k != CALLER_ID} for r in writer]
    return schemes, caller, [r for i, r in enumerate(writer) if r not in writer[:i]]


def _together(schemes: dict[str, Any]) -> Requirement:
    """The caller's id and groups headers together, as far as they are declared."""
    return {name: [] for name in (CALLER_ID, CALLER_GROUPS) if name in schemes}


def _add_shared(operation: dict[str, Any]) -> None:
    """The request id both ways, the 405 of the other methods, the replay header."""
    operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/RequestId"})
    responses = operation["responses"]
    responses["405"] = {
        "description": "`method_not_allowed`: the path does not take this method (`Allow` "
        "lists those it takes); any path answers so to the methods not documented.",
        "headers": {"Allow": {"$ref": "#/components/headers/Allow"}},
        "content": {JSON: {"schema": {"$ref": SCHEMAS + "Error"}}},
    }
    replayable = any(p.get("name") == IDEMPOTENCY_HEADER for p in operation["parameters"])
    for status, response in responses.items():
        headers = response.setdefault("headers", {})
        headers[REQUEST_ID_HEADER] = {"$ref": "#/components/headers/RequestId"}
        if replayable and status.startswith("2"):
            headers[REPLAYED] = {"$ref": "#/components/headers/Replayed"}


# -- when the app starts ---------------------------------------------------------------------


async def describe_providers(app: web.Application) -> None:
    """On startup, after the providers opened: what they enforce, and examples they accept."""
    video = app[SERVICES].video
    describe(
        openapi_document(app),
        video.limits,
        resolves_ids=app[SERVICES].identity.resolves_bare_ids,
        policy=app[SERVICES].settings.rooms.policy,
        credentials_seconds=video.credentials_seconds
        if isinstance(video, SdkCredentials)
        else None,
    )


def describe(
    document: dict[str, Any],
    limits: ProviderLimits,
    *,
    resolves_ids: bool,
    policy: RoomPolicy,
    credentials_seconds: tuple[int, int] | None,
) -> None:
    """The bounds and forms the core checks against the providers, as schema keywords."""
    schemas = document["components"]["schemas"]
    participants = schemas["ParticipantsObject"]["properties"]
    participants["number"].update(
        minimum=limits.min_participants,
        maximum=limits.max_participants,
        description="How many participants the call will have: "
        f"{limits.min_participants} to {limits.max_participants} with this video provider.",
    )
    participants["data"]["maxItems"] = limits.max_participants
    for name in ("CreateTeleconsultation", "UpdateTeleconsultation"):
        properties = schemas[name]["properties"]
        properties["participants"] = _participants(limits, resolves_ids=resolves_ids)
        if not policy.unlimited:  # rooms last end - start: the provider's bounds apply
            properties["duration_in_seconds"].update(
                minimum=max(MIN_DURATION_SECONDS, limits.min_duration_seconds),
                maximum=limits.max_duration_seconds,
            )
    if credentials_seconds is not None:
        shortest, longest = credentials_seconds
        schemas["CredentialsRequest"]["properties"]["expiresIn"].update(
            minimum=shortest, maximum=longest
        )
    by_operation = _examples(resolves_ids)
    for path_item in document["paths"].values():
        for operation in path_item.values():
            examples = by_operation.get(operation["operationId"])
            if examples is not None:
                operation["requestBody"]["content"][JSON]["examples"] = examples


def _participants(limits: ProviderLimits, *, resolves_ids: bool) -> dict[str, Any]:
    if not resolves_ids:
        return {
            "allOf": [{"$ref": SCHEMAS + "ParticipantsObject"}],
            "description": "How many participants, and those known so far, each with their "
            "groups and fullName (this identity provider takes them from the request).",
        }
    ids = {
        "type": "array",
        "minItems": limits.min_participants,
        "maxItems": limits.max_participants,
        "items": {"type": "string", "minLength": 1, "maxLength": 256},
        "description": "Every participant's user id; the identity provider finds the rest.",
    }
    return {
        "oneOf": [ids, {"$ref": SCHEMAS + "ParticipantsObject"}],
        "description": "An array of user ids (all participants), or `{number, data}`.",
    }


def _examples(resolves_ids: bool) -> Mapping[str, dict[str, Any]]:
    """Request bodies the server accepts as they are (a test sends each): Swagger UI's
    default body is the first. Without an identity provider that resolves ids, each
    participant comes with their groups and name; with one, with their id only."""
    doctor: dict[str, object] = {"userExternalId": "doctor-1", "language": "en"}
    patient: dict[str, object] = {"userExternalId": "patient-1", "language": "it"}
    if not resolves_ids:
        doctor, patient = {**DOCTOR, **doctor}, {**PATIENT, **patient}
    create = {
        "oneKnown": {
            "summary": "Two participants, the doctor known so far",
            "value": {
                "participants": {"number": 2, "data": [doctor]},
                "start_date": START,
                "end_date": END,
            },
        },
        "everyoneKnown": {
            "summary": "Everyone known (the room is made now), with a duration",
            "value": {
                "participants": {"number": 2, "data": [doctor, patient]},
                "start_date": START,
                "duration_in_seconds": 1800,
            },
        },
    }
    if resolves_ids:
        create["userIds"] = {
            "summary": "Everyone known, by user id",
            "value": {
                "participants": ["doctor-1", "patient-1"],
                "start_date": START,
                "end_date": END,
            },
        }
    return {
        "createTeleconsultation": create,
        "updateTeleconsultation": {
            "reschedule": {
                "summary": "Move the call half an hour later",
                "value": {
                    "start_date": "2030-02-22T16:00:00.000Z",
                    "end_date": "2030-02-22T17:00:00.000Z",
                },
            },
            "duration": {
                "summary": "Make it last 45 minutes",
                "value": {"duration_in_seconds": 2700},
            },
        },
        "addParticipant": {"patient": {"summary": "The patient", "value": patient}},
        "createCredentials": {"hour": {"summary": "An hour", "value": {"expiresIn": 3600}}},
        "updateSettings": {
            "alias": {
                "summary": "A background the company has",
                "value": {"background_alias": BACKGROUND_ALIAS},
            }
        },
    }
