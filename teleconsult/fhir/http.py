"""The HTTP side of the FHIR interface: bodies in, resources and OperationOutcomes out.

Every answer under /fhir/R4 is `application/fhir+json`, an error an OperationOutcome
(`fhir_errors`) rather than the API's error body, with the status the API would give.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import LooseHeaders

from teleconsult.api.errors import HTTP_ERROR_CODES, read_body
from teleconsult.errors import (
    ClientClosed,
    ErrorCode,
    MalformedBody,
    ServiceError,
    Unavailable,
    UnsupportedMediaType,
)
from teleconsult.fhir.outcome import error_outcome, outcome
from teleconsult.fhir.r4 import MEDIA_TYPE
from teleconsult.services import SERVICES
from teleconsult.validation import strict_json

log = logging.getLogger(__name__)
PREFIX = "/fhir/R4"
RESOURCE_TYPES = ("application/fhir+json", "application/json")
JSON_PATCH = "application/json-patch+json"
FhirHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fhir_answer(
    resource: object, *, status: int = 200, headers: LooseHeaders | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(resource, separators=(",", ":"), ensure_ascii=False),
        status=status,
        headers=headers,
        content_type=MEDIA_TYPE,
        charset="utf-8",
    )


def base_url(request: web.Request) -> str:
    """This interface's base (links and `Location` are absolute): FHIR_BASE_URL, else as the
    client reached it."""
    configured = request.app[SERVICES].settings.fhir.base_url
    return configured or str(request.url.origin()) + PREFIX


def fhir_errors(handler: FhirHandler) -> FhirHandler:
    """The handler's answer, or its failure as an OperationOutcome (never a stack trace)."""

    @functools.wraps(handler)  # keeps aiohttp-apigami's documentation of the handler
    async def answered(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ClientClosed:
            raise
        except ServiceError as error:
            response = fhir_answer(error_outcome(error), status=error.status)
            if isinstance(error, Unavailable) and error.retry_after is not None:
                response.headers[hdrs.RETRY_AFTER] = str(error.retry_after)
            return response
        except web.HTTPException as error:
            if error.status < 400:
                raise
            code: ErrorCode = HTTP_ERROR_CODES.get(error.status, "validation")
            return fhir_answer(outcome(error.status, error.reason, code), status=error.status)
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            message = "The service failed unexpectedly; the error was logged."
            return fhir_answer(outcome(500, message, "internal"), status=500)

    return answered


async def json_body(request: web.Request, media_types: tuple[str, ...]) -> Any:
    """The body, JSON sent as one of `media_types`, read within bounds (413, 408, 415, 400)."""
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    if declared is None or request.content_type.lower() not in media_types:
        raise UnsupportedMediaType(
            f"The body must be sent with Content-Type {' or '.join(media_types)}, "
            + (f"not {declared}." if declared else "and this one has no Content-Type.")
        )
    timeout = request.app[SERVICES].settings.http.read_timeout_ms / 1000
    text = await read_body(request, timeout)
    try:
        return strict_json(text)
    except ValueError as error:
        raise MalformedBody(f"The body is not valid JSON: {error}.") from None


def method_not_allowed(request: web.Request, allowed: tuple[str, ...]) -> web.Response:
    message = f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}."
    return fhir_answer(
        outcome(405, message, "method_not_allowed"),
        status=405,
        headers={hdrs.ALLOW: ", ".join(allowed)},
    )
