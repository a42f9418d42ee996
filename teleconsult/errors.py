"""Every error the core raises, in one hierarchy, and the codes callers switch on.

`ServiceError` and its subclasses carry the HTTP status a caller should see and a
stable `code` (one of `ERROR_CODES`); the API layer turns them into
`{"statusCode", "error", "message", "code"}` bodies (with `details` for a
`validation` error), and nothing else in the core knows about HTTP. Each says
whether the request that raised it may have written something
(`may_have_written`): idempotency keeps a key whose request may have changed
state, and frees the others.

The other classes are signals between layers (a lost compare-and-set, an answer
of the wrong shape, a client that left) or a reason not to start.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar, Literal, TypedDict

ProviderFailure = Literal["bad_answer", "unreachable", "timeout"]

ErrorCode = Literal[
    "validation",
    "malformed_body",
    "malformed_request",
    "no_plus_user",
    "unauthorized",
    "forbidden",
    "participant_blocked",
    "origin_not_allowed",
    "not_found",
    "no_route",
    "method_not_allowed",
    "request_timeout",
    "locked",
    "no_room",
    "contention",
    "user_map_conflict",
    "idempotency_in_progress",
    "too_large",
    "unsupported_media_type",
    "header_too_large",
    "idempotency_key_reused",
    "too_many_idempotency_keys",
    "internal",
    "unreadable_record",
    "not_supported",
    "provider_bad_answer",
    "provider_unavailable",
    "provider_timeout",
    "store_unavailable",
    "deadline_exceeded",
]

ERROR_CODES: dict[ErrorCode, str] = {
    "validation": "400: the request does not follow the API (`details` lists each problem).",
    "malformed_body": "400: the body is not JSON (or UTF-8), or ended early.",
    "malformed_request": "400: the request is not well-formed HTTP (aiohttp cannot parse it).",
    "no_plus_user": "400: everyone is known and nobody belongs to a `plus` group.",
    "unauthorized": "401: the caller is unknown, not a participant, or has no valid token.",
    "forbidden": "403: the caller may not change this teleconsultation, may not write, or is "
    "not a manager (another's listing, audit trails).",
    "participant_blocked": "403: the caller was removed from this teleconsultation (blocked); "
    "no link is handed out until someone who may lets them back in.",
    "origin_not_allowed": "403: a browser's preflight from an origin not in CORS_ALLOWED_ORIGINS.",
    "not_found": "404: no such teleconsultation (or it was cancelled), or background.",
    "no_route": "404: no such route.",
    "method_not_allowed": "405: the route exists, not with this method (see `Allow`).",
    "request_timeout": "408: the body did not arrive within HTTP_READ_TIMEOUT_MS.",
    "locked": "409: the teleconsultation is in its immutable window; cancel it instead.",
    "no_room": "409: the teleconsultation has no room yet, so no link to revoke.",
    "contention": "409: the teleconsultation kept changing while the request was applied; retry.",
    "user_map_conflict": "409: a participant's provider user already stands for another id.",
    "idempotency_in_progress": "409: a request with this Idempotency-Key is still running.",
    "too_large": "413: the body (64 KiB of JSON) or the file (10 MB) is too large.",
    "unsupported_media_type": "415: the body is not sent as JSON (or the image is not JPEG).",
    "header_too_large": "431: the request line or a header is longer than 8190 bytes.",
    "idempotency_key_reused": "422: the Idempotency-Key was used for another request.",
    "too_many_idempotency_keys": "429: the caller holds too many unexpired Idempotency-Keys.",
    "internal": "500: the service failed unexpectedly; the error was logged.",
    "unreadable_record": "500: a stored record is not in this service's form: run "
    "`teleconsult migrate`.",
    "not_supported": "501: the configured video provider does not offer this.",
    "provider_bad_answer": "502: a provider answered wrongly; `message` names the operation.",
    "provider_unavailable": "503: a provider cannot be reached; retry later.",
    "provider_timeout": "504: a provider did not answer in time.",
    "store_unavailable": "503: the store cannot be reached (or stayed locked); retry after "
    "`Retry-After` seconds.",
    "deadline_exceeded": "504: a change did not complete in time; it may have been applied.",
}
"""Every `code` an error body may carry, with its status and meaning (docs/api.md shows them);
the same codes as `ErrorCode`, in its order (tests/test_errors.py checks it)."""


class Problem(TypedDict):
    """One problem of an invalid request: where (`participants.data[0].groups`) and what."""

    path: str
    message: str


class ConfigurationError(Exception):
    """A setting or configuration file is wrong: the service must not start."""


class ClientClosed(Exception):
    """The client closed the connection before its request was read: nobody waits for an answer.

    Not a failure of the service: counted apart (`client_closed`) and logged at debug.
    """


class VersionConflict(Exception):
    """Another writer changed the record since it was read: re-read and try again."""


class CutoffPassed(VersionConflict):
    """The write came at or after its cutoff (a teleconsultation's lock time), so it wrote
    nothing: re-read, and the record's rules refuse the change (409 `locked`)."""


class UnexpectedAnswer(ValueError):
    """A 2xx answer from a provider whose body does not have the shape a plugin expects."""


class JSONTextError(ValueError):
    """A text that is not JSON we accept; the message says why, for a caller to act on."""


class ServiceError(Exception):
    """An error a caller can act on. `error` defaults to the HTTP reason phrase; `code`
    to the class's."""

    status: int = 500
    code: ErrorCode = "internal"
    may_have_written: bool = False
    """True when the failure may come after a write went through (a lost acknowledgement)."""
    close_connection: bool = False
    """Close the connection after the answer: the request was not read to its end."""

    details: tuple[Problem, ...] = ()
    """The problems of an invalid request, each with its path (a `validation` error)."""

    def __init__(
        self, message: str, *, error: str | None = None, code: ErrorCode | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error = error
        if code is not None:
            self.code = code

    def __init_subclass__(
        cls, *, status: int | None = None, code: ErrorCode | None = None, **kwargs: object
    ) -> None:
        """A subclass names its status and code in its header, one declaration each."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code


# -- 4xx: the request, as sent, cannot be carried out -------------------------------------------


class InvalidRequest(ServiceError, status=400, code="validation"):
    """The request does not follow the API. `path` names the part at fault, as a caller
    wrote it (`participants.number`, `start_date`; `body` for the whole body), or
    `details` lists several problems."""

    def __init__(
        self, message: str, *, path: str = "body", details: tuple[Problem, ...] = ()
    ) -> None:
        super().__init__(message)
        self.details = details or (Problem(path=path, message=message),)


class MalformedBody(ServiceError, status=400, code="malformed_body"):
    """The body cannot be read as JSON at all: nothing in it could be validated."""


class NoPlusUser(ServiceError, status=400, code="no_plus_user"):
    """Everyone is known and nobody may run the call. The API gives it the original's
    documented `error` string, which names the route (`Failed POST /teleconsultation: ...`)."""

    def __init__(self) -> None:
        super().__init__(
            "At least one participant must belong to a group of the plus privilege level."
        )


class Unauthorized(ServiceError, status=401, code="unauthorized"):
    """The caller is unknown, not a participant, or has no valid token."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error="Unauthorized user")


class Forbidden(ServiceError, status=403, code="forbidden"):
    """The caller is known but may not do this (change it, write, or read as a manager)."""


class NotFound(ServiceError, status=404, code="not_found"):
    """What the request names does not exist (a cancelled teleconsultation included)."""


class RequestTimeout(ServiceError, status=408, code="request_timeout"):
    """The body did not arrive in time: the connection is closed after the answer."""

    close_connection = True


class Conflict(ServiceError, status=409, code="contention"):
    """409; `code` says which: `locked`, `contention`, `user_map_conflict`,
    `idempotency_in_progress`."""


class TooLarge(ServiceError, status=413, code="too_large"):
    """The body or the file is larger than the service accepts."""


class UnsupportedMediaType(ServiceError, status=415, code="unsupported_media_type"):
    """The body is not sent in a type the route reads (JSON, a JPEG image)."""


class Unprocessable(ServiceError, status=422, code="idempotency_key_reused"):
    """An Idempotency-Key was used again for another request."""


class TooManyRequests(ServiceError, status=429, code="too_many_idempotency_keys"):
    """The caller holds too many unexpired Idempotency-Keys."""


# -- 5xx: the service or a dependency failed ----------------------------------------------------


class UnreadableRecord(ServiceError, status=500, code="unreadable_record"):
    """A stored document without the fields this service writes (one of the original's, say)."""

    def __init__(self, record_id: str) -> None:
        super().__init__(
            f"The stored teleconsultation {record_id} is not in the form this service writes "
            "(it may come from the original service): run `teleconsult migrate` "
            "(docs/operations.md, 'Coming from the original service')."
        )


class MissingCapability(ServiceError, status=501, code="not_supported"):
    """The configured video provider does not offer what the endpoint needs."""

    def __init__(self, provider: str, capability: str, why: str = "") -> None:
        because = f": {why}" if why else "."
        super().__init__(f"The {provider} video provider does not offer {capability}{because}")


class Unavailable(ServiceError, status=503, code="store_unavailable"):
    """A dependency (the store) cannot be reached right now; the caller may retry.

    A write whose acknowledgement was lost may still have been applied.
    """

    may_have_written = True

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds after which a retry may succeed: the answer's `Retry-After`."""


class TooSlow(ServiceError, status=504, code="deadline_exceeded"):
    """A change did not complete within its deadline: it may or may not have been applied."""

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
    CODE_BY_KIND: ClassVar[dict[str, ErrorCode]] = {
        "bad_answer": "provider_bad_answer",
        "unreachable": "provider_unavailable",
        "timeout": "provider_timeout",
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
        late_id: Awaitable[str | None] | None = None,
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.kind = kind
        self.status = self.STATUS_BY_KIND[kind]
        self.code = self.CODE_BY_KIND[kind]
        self.may_have_acted = may_have_acted
        """The provider may have carried the operation out (a room made whose answer was lost)."""
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (a 429's Retry-After) before trying again."""
        self.late_id = late_id
        """A call that timed out but whose answer is still read (`outbound`): the id of what
        it made, once that answer comes; None if none comes before the caller's deadline."""
        super().__init__(f"The {provider} provider failed to {operation}: {detail}")
