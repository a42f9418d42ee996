"""Every error leaves as `{"statusCode", "error", "message"}`: never a stack trace.

Service errors carry their status; aiohttp's own HTTP errors (unknown route,
wrong method) are reshaped; anything unexpected is logged and becomes a 500
whose message holds nothing internal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, NoReturn

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from marshmallow import Schema, ValidationError
from webargs.aiohttpparser import AIOHTTPParser

from teleconsult.errors import InvalidRequest, ServiceError
from teleconsult.validation import JSONTextError, error_lines, strict_json

log = logging.getLogger(__name__)

LOCATIONS = ("json", "querystring", "match_info", "headers", "form")


def error_response(status: int, message: str, error: str | None = None) -> web.Response:
    return web.json_response(
        {"statusCode": status, "error": error or HTTPStatus(status).phrase, "message": message},
        status=status,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as error:
        return error_response(error.status, error.message, error.error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = error_response(error.status, _http_error_message(request, error))
        if isinstance(error, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(error.allowed_methods))
        return response
    except Exception:
        log.exception("unexpected error in %s %s", request.method, _route(request))
        return error_response(500, "The service failed unexpectedly; the error was logged.")


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


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
    """webargs' parser, made to raise our 400s and to read bodies sent without a Content-Type.

    A body declared as anything but JSON is a 415: form posts are what a browser
    sends cross-site without asking, so refusing them closes that door.
    """

    async def load_json(self, req: web.Request, schema: Schema) -> Any:
        declared = hdrs.CONTENT_TYPE in req.headers  # aiohttp reports octet-stream when absent
        if req.body_exists and declared and req.content_type.lower() != "application/json":
            raise _UnsupportedMediaType(req.content_type)
        if not req.body_exists:
            return {}
        try:
            text = (await req.read()).decode("utf-8")  # JSON is UTF-8 (RFC 8259)
        except RequestPayloadError as error:
            detail = getattr(error.__cause__, "message", None) or "it ended early"
            raise InvalidRequest(f"The body could not be read: {detail}.") from None
        except UnicodeDecodeError:
            raise InvalidRequest("The body is not valid UTF-8.") from None
        if not text.strip():
            return {}
        try:
            body = strict_json(text)
        except JSONTextError as error:
            raise InvalidRequest(f"The body is not valid JSON: {error}.") from None
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
        raise InvalidRequest("; ".join(error_lines(messages, root="body")))


class _UnsupportedMediaType(ServiceError):
    status = 415

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"The body must be JSON sent with Content-Type: application/json, not {content_type}."
        )
