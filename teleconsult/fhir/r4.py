"""What makes a resource we serve valid R4: the R4B models of `fhir.resources` for the shape,
and R4's own value sets for the codes we use, which the models do not check.

`fhir.resources` 8 (pydantic 2) has no R4 package (its R4 is 6.5, on pydantic 1). R4B
changed nothing in the fields of Appointment, Bundle, OperationOutcome and
CapabilityStatement that we serve (`SERVED_FIELDS`), so their R4B models read and write
our resources; the codes are checked against R4 (4.0.1) here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"


def _names(names: str) -> frozenset[str]:
    """A value set's codes or a resource's fields, separated by spaces."""
    return frozenset(names.split())


APPOINTMENT_STATUS = _names(
    "proposed pending booked arrived fulfilled cancelled noshow entered-in-error checked-in "
    "waitlist"
)
"""http://hl7.org/fhir/R4/valueset-appointmentstatus.html"""
PARTICIPATION_STATUS = frozenset({"accepted", "declined", "tentative", "needs-action"})
PARTICIPANT_REQUIRED = frozenset({"required", "optional", "information-only"})
BUNDLE_TYPE = _names(
    "document message transaction transaction-response batch batch-response history "
    "searchset collection"
)
SEARCH_ENTRY_MODE = frozenset({"match", "include", "outcome"})
ISSUE_SEVERITY = frozenset({"fatal", "error", "warning", "information"})
ISSUE_TYPE = _names(
    "invalid structure required value invariant security login unknown expired forbidden "
    "suppressed processing not-supported duplicate multiple-matches not-found deleted "
    "too-long code-invalid extension too-costly business-rule conflict transient lock-error "
    "no-store exception timeout incomplete throttled informational"
)
PUBLICATION_STATUS = frozenset({"draft", "active", "retired", "unknown"})
CAPABILITY_KIND = frozenset({"instance", "capability", "requirements"})
RESTFUL_MODE = frozenset({"client", "server"})
TYPE_INTERACTION = _names(
    "read vread update patch delete history-instance history-type create search-type"
)
SEARCH_PARAM_TYPE = frozenset(
    {"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
)
FHIR_VERSIONS_R4 = frozenset({"4.0.0", "4.0.1"})
VERSIONING_POLICY = frozenset({"no-version", "versioned", "versioned-update"})
CONDITIONAL_DELETE = frozenset({"not-supported", "single", "multiple"})

CODES: Mapping[str, frozenset[str]] = {
    "Appointment.status": APPOINTMENT_STATUS,
    "Appointment.participant.status": PARTICIPATION_STATUS,
    "Appointment.participant.required": PARTICIPANT_REQUIRED,
    "Bundle.type": BUNDLE_TYPE,
    "Bundle.entry.search.mode": SEARCH_ENTRY_MODE,
    "OperationOutcome.issue.severity": ISSUE_SEVERITY,
    "OperationOutcome.issue.code": ISSUE_TYPE,
    "CapabilityStatement.status": PUBLICATION_STATUS,
    "CapabilityStatement.kind": CAPABILITY_KIND,
    "CapabilityStatement.fhirVersion": FHIR_VERSIONS_R4,
    "CapabilityStatement.rest.mode": RESTFUL_MODE,
    "CapabilityStatement.rest.resource.interaction.code": TYPE_INTERACTION,
    "CapabilityStatement.rest.resource.searchParam.type": SEARCH_PARAM_TYPE,
    "CapabilityStatement.rest.resource.versioning": VERSIONING_POLICY,
    "CapabilityStatement.rest.resource.conditionalDelete": CONDITIONAL_DELETE,
}
"""Each coded element we serve, by its FHIRPath, with the R4 codes it may hold."""

SERVED_FIELDS: Mapping[str, frozenset[str]] = {
    "Appointment": _names(
        "resourceType id meta extension identifier status start end minutesDuration participant"
    ),
    "Bundle": frozenset({"resourceType", "type", "link", "entry", "total"}),
    "OperationOutcome": frozenset({"resourceType", "issue"}),
    "CapabilityStatement": _names(
        "resourceType status date kind software implementation fhirVersion format patchFormat rest"
    ),
    "Appointment.participant": frozenset({"extension", "type", "actor", "required", "status"}),
    "Bundle.link": frozenset({"relation", "url"}),
    "Bundle.entry": frozenset({"fullUrl", "resource", "search"}),
    "OperationOutcome.issue": frozenset(
        {"severity", "code", "details", "diagnostics", "expression"}
    ),
    "CapabilityStatement.rest": frozenset({"mode", "resource"}),
    "CapabilityStatement.rest.resource": _names(
        "type documentation interaction versioning conditionalCreate conditionalUpdate "
        "conditionalDelete searchParam"
    ),
}
"""The elements we read or write, of each resource and of its parts (by FHIRPath): each in
R4 as in R4B."""

MODELS: Mapping[str, type[Resource]] = {
    "Appointment": Appointment,
    "Bundle": Bundle,
    "OperationOutcome": OperationOutcome,
    "CapabilityStatement": CapabilityStatement,
}


def r4_problems(resource: Mapping[str, Any]) -> list[str]:
    """What keeps `resource` (one we serve, as JSON) from being valid R4: a field outside
    those we know are R4, or a code outside R4's value set; empty when it is valid."""
    kind = str(resource.get("resourceType"))
    if kind not in SERVED_FIELDS:
        return [f"resourceType {kind!r} is not one this service serves"]
    problems = [
        f"{path}.{name} is not an element served as R4"
        for path, known in SERVED_FIELDS.items()
        if path.split(".")[0] == kind
        for node in _values(resource, path.split(".")[1:])
        for name in node
        if name not in known
    ]
    for path, value in _coded(kind, resource):
        allowed = CODES[path]
        if value not in allowed:
            problems.append(f"{path} {value!r} is not an R4 code")
    if kind == "Bundle":
        for entry in resource.get("entry", ()):
            problems += r4_problems(entry.get("resource", {}))
    return problems


def _coded(kind: str, resource: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Each (path, value) of the coded elements of `CODES` found in `resource`."""
    for path in CODES:
        steps = path.split(".")
        if steps[0] == kind:
            yield from ((path, value) for value in _values(resource, steps[1:]))


def _values(node: Any, steps: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, steps)
        return
    if not steps:
        yield node
        return
    if isinstance(node, Mapping) and steps[0] in node:
        yield from _values(node[steps[0]], steps[1:])


def parsed(resource: Mapping[str, Any]) -> Resource:
    """The resource read by its R4B model (a `pydantic.ValidationError` when it does not fit)."""
    return MODELS[str(resource.get("resourceType"))].model_validate(resource)


def served(model: Resource) -> dict[str, Any]:
    """A resource as it leaves: its model's JSON, checked as R4 (a bug of ours otherwise)."""
    resource: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    problems = r4_problems(resource)
    if problems:
        raise ValueError(f"not R4: {'; '.join(problems)}")
    return resource
