"""Errors as FHIR answers: an `OperationOutcome` with the HTTP status the API would give.

The core's errors keep their status and `code` (the API's, in `issue.details`); the
issue's `code` is R4's IssueType for that status, and `expression` names the element
at fault in FHIR terms where the core named a field of the API.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue

from teleconsult.errors import ServiceError
from teleconsult.fhir.r4 import served
from teleconsult.observability import redaction

ERROR_CODE_SYSTEM = "urn:teleconsult:error-code"
"""The system of `issue.details.coding`: the API's error codes (docs/api.md)."""

ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    409: "conflict",
    412: "multiple-matches",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    501: "not-supported",
    502: "exception",
    503: "transient",
    504: "timeout",
}
"""R4 IssueType by HTTP status; anything else is an `exception`."""

_API_PATHS = (
    (re.compile(r"^participants\.data\[(\d+)\]"), r"Appointment.participant[\1]"),
    (re.compile(r"^participants\.number"), "Appointment.extension"),
    (re.compile(r"^participants(\.data)?"), "Appointment.participant"),
    (re.compile(r"^start_date"), "Appointment.start"),
    (re.compile(r"^end_date"), "Appointment.end"),
    (re.compile(r"^duration_in_seconds"), "Appointment.minutesDuration"),
    (re.compile(r"^cursor$"), "_cursor"),
)
"""The API's field names the core's messages use, and the element each stands for."""


def fhir_path(path: str) -> str:
    """An error's path as a FHIR element (`participants.data[1]` is `participant[1]`)."""
    if path.startswith("Appointment") or path.startswith("Bundle"):
        return path
    for pattern, element in _API_PATHS:
        if pattern.match(path):
            return pattern.sub(element, path, count=1)
    return path


def outcome(status: int, message: str, code: str, paths: tuple[str, ...] = ()) -> dict[str, object]:
    """The OperationOutcome of one failure; no configured secret reaches it."""
    severity = "fatal" if status >= 500 else "error"
    issue = OperationOutcomeIssue(
        severity=severity,
        code=ISSUE_TYPES.get(status, "exception"),
        details=CodeableConcept(
            coding=[Coding(system=ERROR_CODE_SYSTEM, code=code)],
            text=HTTPStatus(status).phrase,
        ),
        diagnostics=redaction.redact_secrets(message),
        expression=[fhir_path(path) for path in paths if path != "body"] or None,
    )
    return served(OperationOutcome(issue=[issue]))


def error_outcome(error: ServiceError) -> dict[str, object]:
    paths = tuple(problem["path"] for problem in error.details)
    message = error.message
    if len(error.details) > 1:
        message = "; ".join(f"{fhir_path(p['path'])}: {p['message']}" for p in error.details)
    return outcome(error.status, message, error.code, paths)
