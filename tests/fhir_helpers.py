"""What the FHIR tests share: an Appointment as an EHR sends it, a fhirpy client of the
served app, and the check that an answer is valid R4 (its R4B model, then R4's codes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhirpy import AsyncFHIRClient

from teleconsult.fhir.r4 import parsed, r4_problems
from tests.helpers import END, START, Client

MANAGER_CALLS = {"miauserid": "secretary-1", "miausergroups": "secretaries"}
FHIR_JSON = {"Content-Type": "application/fhir+json"}
EXPECTED = "urn:teleconsult:fhir:StructureDefinition:expected-participants"
VIRTUAL_SERVICE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.virtualService"
DOCTOR_ACTOR = {"reference": "Practitioner/doctor-1", "display": "Joe Smith"}
PATIENT_ACTOR = {"reference": "Patient/patient-1", "display": "Jane Doe"}


def appointment(
    *actors: Mapping[str, Any], start: str = START, end: str = END, **fields: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": start,
        "end": end,
        "participant": [{"actor": dict(actor), "status": "accepted"} for actor in actors],
        **fields,
    }


def fhir_client(client: Client, headers: Mapping[str, str] = MANAGER_CALLS) -> AsyncFHIRClient:
    return AsyncFHIRClient(str(client.make_url("/fhir/R4")), extra_headers=dict(headers))


def valid_r4(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource, once its R4B model reads it and R4's codes hold (else the test fails)."""
    parsed(resource)
    assert r4_problems(resource) == []
    return dict(resource)


def serialized(resource: Any) -> dict[str, Any]:
    """A fhirpy resource as the JSON it came as."""
    data: dict[str, Any] = resource.serialize()
    return data


def participant_entries(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": entry["actor"]["identifier"]["value"],
            "type": entry["actor"].get("type"),
            "display": entry["actor"]["display"],
            "link": _link(entry),
        }
        for entry in resource["participant"]
        if "actor" in entry
    ]


def _link(entry: Mapping[str, Any]) -> str | None:
    for extension in entry.get("extension", ()):
        if extension["url"] == VIRTUAL_SERVICE:
            parts = {part["url"]: part for part in extension["extension"]}
            assert parts["channelType"]["valueCoding"]["system"] == "urn:teleconsult:video-provider"
            link: str = parts["addressUrl"]["valueUrl"]
            return link
    return None


def outcome(status: int, code: str, api_code: str, diagnostics: str, *paths: str) -> dict[str, Any]:
    """The OperationOutcome the service answers a failure with."""
    issue: dict[str, Any] = {
        "severity": "fatal" if status >= 500 else "error",
        "code": code,
        "details": {
            "coding": [{"system": "urn:teleconsult:error-code", "code": api_code}],
            "text": {
                400: "Bad Request",
                401: "Unauthorized",
                403: "Forbidden",
                404: "Not Found",
                405: "Method Not Allowed",
                409: "Conflict",
                415: "Unsupported Media Type",
            }[status],
        },
        "diagnostics": diagnostics,
    }
    if paths:
        issue["expression"] = list(paths)
    return {"resourceType": "OperationOutcome", "issue": [issue]}
