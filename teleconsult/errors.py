"""Every error the core raises, in one hierarchy.

`ServiceError` and its subclasses carry the HTTP status a caller should see; the
API layer turns them into `{"statusCode", "error", "message"}` bodies, and
nothing else in the core knows about HTTP. Each says whether the request that
raised it may have written something (`may_have_written`): idempotency keeps a
key whose request may have changed state, and frees the others.

The other classes are signals between layers (a lost compare-and-set, an answer
of the wrong shape, a client that left) or a reason not to start.
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


class VersionConflict(Exception):
    """Another writer changed the record since it was read: re-read and try again."""


class UnexpectedAnswer(ValueError):
    """A 2xx answer from a provider whose body does not have the shape a plugin expects."""


class JSONTextError(ValueError):
    """A text that is not JSON we accept; the message says why, for a caller to act on."""


class ServiceError(Exception):
    """An error a caller can act on. `error` defaults to the HTTP reason phrase."""

    status: int = 500
    may_have_written: bool = False
    """True when the failure may come after a write went through (a lost acknowledgement)."""
    close_connection: bool = False
    """Close the connection after the answer: the request was not read to its end."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error = error


# -- 4xx: the request, as sent, cannot be carried out -------------------------------------------


class InvalidRequest(ServiceError):
    status = 400


class NoPlusUser(InvalidRequest):
    """Everyone is known and nobody may run the call. The API gives it the original's
    documented `error` string, which names the route (`Failed POST /teleconsultation: ...`)."""

    def __init__(self) -> None:
        super().__init__(
            "At least one participant must belong to a group of the plus privilege level."
        )


class Unauthorized(ServiceError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, error="Unauthorized user")


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class RequestTimeout(ServiceError):
    status = 408
    close_connection = True


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class Unprocessable(ServiceError):
    status = 422


class TooManyRequests(ServiceError):
    status = 429


# -- 5xx: the service or a dependency failed ----------------------------------------------------


class UnreadableRecord(ServiceError):
    """A stored document without the fields this service writes (one of the original's, say)."""

    status = 500

    def __init__(self, record_id: str) -> None:
        super().__init__(
            f"The stored teleconsultation {record_id} is not in the form this service writes "
            "(it may come from the original service): migrate it as docs/operations.md says."
        )


class MissingCapability(ServiceError):
    """The configured video provider does not offer what the endpoint needs."""

    status = 501

    def __init__(self, provider: str, capability: str) -> None:
        super().__init__(f"The {provider} video provider does not offer {capability}.")


class Unavailable(ServiceError):
    """A dependency (the store) cannot be reached right now; the caller may retry.

    A write whose acknowledgement was lost may still have been applied.
    """

    status = 503
    may_have_written = True


class TooSlow(ServiceError):
    """A change did not complete within its deadline: it may or may not have been applied."""

    status = 504
    may_have_written = True


class ProviderError(ServiceError):
    """A provider (video or identity) failed; `operation` names what we asked of it.

    `kind` picks the status: a bad answer is 502, an unreachable provider 503,
    a provider that did not answer in time 504. Provider calls come before the
    record is written, so a provider failure never leaves a change half-made.
    """

    STATUS_BY_KIND: ClassVar[dict[str, int]] = {
        "bad_answer": 502,
        "unreachable": 503,
        "timeout": 504,
    }

    def __init__(
        self,
        provider: str,
        operation: str,
        kind: ProviderFailure,
        detail: str,
        *,
        may_have_acted: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.kind = kind
        self.status = self.STATUS_BY_KIND[kind]
        self.may_have_acted = may_have_acted
        """The provider may have carried the operation out (a room made whose answer was lost)."""
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (a 429's Retry-After) before trying again."""
        super().__init__(f"The {provider} provider failed to {operation}: {detail}")
