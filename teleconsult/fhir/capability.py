"""`GET /fhir/R4/metadata`: the CapabilityStatement of what this interface supports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.capabilitystatement import (
    CapabilityStatement,
    CapabilityStatementImplementation,
    CapabilityStatementRest,
    CapabilityStatementRestResource,
    CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceSearchParam,
    CapabilityStatementSoftware,
)

from teleconsult import __version__
from teleconsult.fhir.mapping import CHANNEL_SYSTEM, EXPECTED_PARTICIPANTS, VIRTUAL_SERVICE
from teleconsult.fhir.r4 import FHIR_VERSION, MEDIA_TYPE, served

PUBLISHED = datetime(2026, 1, 1, tzinfo=UTC)
"""When this statement's content last changed (CapabilityStatement.date)."""
JSON_PATCH = "application/json-patch+json"
INTERACTIONS = ("create", "read", "update", "patch", "delete", "search-type")
SEARCH_PARAMETERS = (
    ("actor", "reference", "A participant: `Type/id`, or the id alone (the external id)."),
    (
        "date",
        "date",
        "Appointment.start, with a prefix `ge`, `gt`, `lt` or `le` (twice for a range).",
    ),
    ("status", "token", "booked, arrived, fulfilled or cancelled (comma-separated: any)."),
    (
        "identifier",
        "token",
        "The EHR's Appointment.identifier: `system|value`, `|value` or `value`; searched alone.",
    ),
    ("_count", "number", "Entries per page, 1 to 100 (default 20); `next` links page on."),
)
DOCUMENTATION = (
    "Teleconsultations as Appointments. Participants are actors (Practitioner, "
    "PractitionerRole, Patient, RelatedPerson) named by `identifier.value` or a reference "
    "`Type/id`; `display` is their name. Participants not known yet: extension "
    f"`{EXPECTED_PARTICIPANTS}` (valuePositiveInt) gives the number expected. Inside the "
    "immutable window, the caller's own participant entry carries the extension "
    f"`{VIRTUAL_SERVICE}` (channelType in `{CHANNEL_SYSTEM}`, addressUrl: the caller's own "
    "link). Conditional create: `If-None-Exist: identifier=system|value`. Cancel with "
    "status `cancelled` (PUT, PATCH) or DELETE. Identify the caller as for the rest of the "
    "API (the caller-id header, or a bearer token)."
)


def capability_statement(base_url: str) -> dict[str, Any]:
    resource = CapabilityStatementRestResource(
        type="Appointment",
        documentation=DOCUMENTATION,
        interaction=[CapabilityStatementRestResourceInteraction(code=c) for c in INTERACTIONS],
        versioning="no-version",
        conditionalCreate=True,
        conditionalUpdate=False,
        conditionalDelete="not-supported",
        searchParam=[
            CapabilityStatementRestResourceSearchParam(name=name, type=kind, documentation=text)
            for name, kind, text in SEARCH_PARAMETERS
        ],
    )
    statement = CapabilityStatement(
        status="active",
        date=PUBLISHED,
        kind="instance",
        software=CapabilityStatementSoftware(name="teleconsult", version=__version__),
        implementation=CapabilityStatementImplementation(
            description="teleconsult: video teleconsultations as FHIR R4 Appointments",
            url=base_url,
        ),
        fhirVersion=FHIR_VERSION,
        format=[MEDIA_TYPE, "json"],
        patchFormat=[JSON_PATCH],
        rest=[CapabilityStatementRest(mode="server", resource=[resource])],
    )
    return served(statement)
