"""Every error leaves as `{"statusCode", "error", "message", "code"}`: never a stack trace.

Service errors carry their status and code; aiohttp's own HTTP errors (unknown
route, wrong method, a body over the size limit) are reshaped; anything
unexpected is logged and becomes a 500 whose message holds nothing internal.
The reason of each 4xx is logged at debug ("request refused", its code and
message: messages name fields and ids, never values a caller sent as names or
links, and the line is redacted like any other).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, NoReturn

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from aiohttp_apigami import validation_middleware
from aiohttp_apigami.constants import SCHEMAS_ATTR
from marshmallow import Schema, ValidationError
from webargs.aiohttpparser import AIOHTTPParser

from teleconsult.api.answers import json_answer
from teleconsult.errors import (
    ClientClosed,
    ErrorCode,
    InvalidRequest,
    JSONTextError,
    MalformedBody,
    Problem,
    RequestTimeout,
    ServiceError,
    Unavailable,
    UnsupportedMediaType,
)
from teleconsult.observability import redaction
from teleconsult.validation import invalid, strict_json

log = logging.getLogger(__name__)

LOCATIONS = ("json", "querystring", "match_info", "headers", "form")
HTTP_ERROR_CODES: dict[int, ErrorCode] = {
    404: "no_route",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
}
"""The code of an error aiohttp raises itself (no route, no such method, a body too large)."""


def error_response(
    status: int,
    message: str,
    code: ErrorCode,
    *,
    error: str | None = None,
    details: Sequence[Problem] = (),
) -> web.Response:
    """The error body every failure has; no configured secret reaches it (a provider's error
    text may echo what it was sent)."""
    body: dict[str, Any] = {
        "statusCode": status,
        "error": error or HTTPStatus(status).phrase,
        "message": redaction.redact_secrets(message),
        "code": code,
    }
    if details:
        body["details"] = [
            Problem(path=problem["path"], message=redaction.redact_secrets(problem["message"]))
            for problem in details
        ]
    return json_answer(body, status=status)


def service_error_response(error: ServiceError) -> web.Response:
    return error_response(
        error.status, error.message, error.code, error=error.error, details=error.details
    )


async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's answer, or its error as an error body (called by `api.middleware`)."""
    try:
        if getattr(handler, SCHEMAS_ATTR, None):  # a body to read: aiohttp-apigami validates it
            return await validation_middleware(request, handler)
        return await handler(request)
    except ClientClosed:
        raise  # not an error of ours: the observing middleware counts it apart
    except ServiceError as error:
        response = service_error_response(error)
        if isinstance(error, Unavailable) and error.retry_after is not None:
            response.headers[hdrs.RETRY_AFTER] = str(error.retry_after)
        _log_refusal(error.status, error.code, error.message)
        if error.close_connection:
            response.force_close()
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message, code = _http_error_message(request, error), _http_error_code(request, error)
        response = error_response(error.status, message, code)
        _log_refusal(error.status, code, message)
        if isinstance(error, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(error.allowed_methods))
        return response
    except Exception:
        log.exception("unexpected error in %s %s", request.method, _route(request))
        return error_response(
            500, "The service failed unexpectedly; the error was logged.", "internal"
        )


def _log_refusal(status: int, code: ErrorCode, message: str) -> None:
    """A 4xx's reason, at debug: the caller's mistake, not the service's."""
    if status < 500:
        log.debug(
            "request refused: %s",
            message,
            extra={"fields": {"statusCode": status, "code": code}},
        )


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _http_error_code(request: web.Request, error: web.HTTPException) -> ErrorCode:
    if error.status == 404 and request.match_info.route.resource is not None:
        return "not_found"  # a route of ours (a plugin's page) found nothing
    return HTTP_ERROR_CODES.get(error.status, "validation" if error.status < 500 else "internal")


def _http_error_message(request: web.Request, error: web.HTTPException) -> str:
    if error.status == 404 and request.match_info.route.resource is None:
        return f"There is no route {request.method} {request.path}."
    if isinstance(error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(error.allowed_methods))
        return f"{request.method} is not allowed on {request.path}; use {allowed}."
    return (
        error.text if error.text and not error.text.startswith(str(error.status)) else error.reason
    )


class RequestParser(AIOHTTPParser):
    """webargs' parser, made to raise our 400s and to read JSON bodies within bounds.

    A body must be declared as JSON (`Content-Type: application/json`); anything
    else, or nothing, is a 415. A form post, or a body with no type at all, is
    what a browser sends cross-site without asking: refusing it closes that door.
    The body must arrive within HTTP_READ_TIMEOUT_MS (else 408) and is at most the
    app's `client_max_size` (else 413).
    """

    def __init__(self, read_timeout_seconds: float) -> None:
        super().__init__()
        self.read_timeout_seconds = read_timeout_seconds

    async def load_json(self, req: web.Request, schema: Schema) -> Any:
        if not req.body_exists:
            return {}
        declared = req.headers.get(hdrs.CONTENT_TYPE)  # aiohttp reports octet-stream when absent
        if declared is None or req.content_type.lower() != "application/json":
            raise not_json(declared)
        text = await read_body(req, self.read_timeout_seconds)
        if not text.strip():
            return {}
        try:
            body = strict_json(text)
        except JSONTextError as error:
            raise MalformedBody(f"The body is not valid JSON: {error}.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object.")
        return body

    def handle_error(
        self,
        error: ValidationError,
        req: web.Request,
        schema: Schema,
        *,
        error_status_code: int | None,
        error_headers: Mapping[str, str] | None,
    ) -> NoReturn:
        messages = error.messages
        if isinstance(messages, dict) and len(messages) == 1:
            [(location, inner)] = messages.items()
            if location in LOCATIONS:
                messages = inner  # webargs nests by location; there is one per request
        raise invalid(messages, root="body")


async def read_body(request: web.Request, timeout_seconds: float) -> str:
    """The whole body as UTF-8 text, read within `timeout_seconds` (a slow client gets a 408)."""
    raw = await read_raw_body(request, timeout_seconds)
    try:
        return raw.decode("utf-8")  # JSON is UTF-8 (RFC 8259)
    except UnicodeDecodeError:
        raise MalformedBody("The body is not valid UTF-8.") from None


async def read_raw_body(request: web.Request, timeout_seconds: float) -> bytes:
    """The whole body as sent (a signature covers these bytes), within `timeout_seconds`."""
    try:
        async with asyncio.timeout(timeout_seconds):
            raw = await request.read()
    except TimeoutError:
        raise read_timeout(timeout_seconds) from None
    except RequestPayloadError as error:
        detail = getattr(error.__cause__, "message", None) or "it ended early"
        raise MalformedBody(f"The body could not be read: {detail}.") from None
    except ConnectionResetError:
        raise ClientClosed() from None
    return raw


def read_timeout(seconds: float) -> RequestTimeout:
    return RequestTimeout(f"The body did not arrive within {seconds:g} s (HTTP_READ_TIMEOUT_MS).")


def not_json(content_type: str | None) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "The body must be JSON sent with Content-Type: application/json, "
        + (f"not {content_type}." if content_type else "and this one has no Content-Type.")
    )
