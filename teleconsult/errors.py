"""Errors the core raises, each carrying the HTTP status a caller should see.

The API layer turns them into `{"statusCode", "error", "message"}` bodies; nothing
else in the core knows about HTTP.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ProviderFailure = Literal["bad_answer", "unreachable", "timeout"]


class ConfigurationError(Exception):
    """A setting or configuration file is wrong: the service must not start."""


class ClientClosed(Exception):
    """The client closed the connection before its request was read: nobody waits for an answer.

    Not a failure of the service: counted apart (`client_closed`) and logged at debug.
    """


class ServiceError(Exception):
    """An error a caller can act on. `error` defaults to the HTTP reason phrase."""

    status: int = 500
    close_connection: bool = False
    """Close the connection after the answer: the request was not read to its end."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


class InvalidRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, error="Unauthorized user")


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Unavailable(ServiceError):
    """A dependency (the store) cannot be reached right now; the caller may retry."""

    status = 503


class ProviderError(ServiceError):
    """A provider (video or identity) failed; `operation` names what we asked of it.

    `kind` picks the status: a bad answer is 502, an unreachable provider 503,
    a provider that did not answer in time 504.
    """

    STATUS_BY_KIND: ClassVar[dict[str, int]] = {
        "bad_answer": 502,
        "unreachable": 503,
        "timeout": 504,
    }

    def __init__(self, provider: str, operation: str, kind: ProviderFailure, detail: str) -> None:
        self.provider = provider
        self.operation = operation
        self.kind = kind
        self.status = self.STATUS_BY_KIND[kind]
        super().__init__(f"The {provider} provider failed to {operation}: {detail}")
