"""Calls from provider plugins to the services behind them: timeouts, safe retries, named failures.

A plugin describes each call (an operation name, whether repeating it is safe)
and gets back a 2xx answer or a `ProviderError`. Retries follow what is safe. A
call that never reached the service (no connection) or that the service refused
unprocessed (429) is retried whatever it does; a call that may have been
carried out (5xx, timeout, dropped connection) is retried only when `safe`.
Failures are 502 (a bad answer), 503 (unreachable, rate limited) or 504 (no
answer in time), and their messages name the operation. Headers (API keys,
tokens) appear in no message and no log line.

A call that cannot be repeated and whose answer names what it made (`late`: a room
whose id the provider assigns) is not abandoned at its timeout: the caller gets its
504 then, but the answer is still read until the caller's deadline (up to
MAX_LATE_READS at once), and the `ProviderError`'s `late_id` gives the id it names, so
what was made can be undone.

An id in a path goes through `path_values`: each is one whole segment, percent-encoded,
and never `.` or `..`, which a URL normaliser would resolve (`/users/..` is `/`); the
URL is sent as built, not normalised again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
import time
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from teleconsult.configuration.declarations import setting
from teleconsult.errors import ProviderError, ProviderFailure, UnexpectedAnswer
from teleconsult.observability import redaction

log = logging.getLogger(__name__)

OK = frozenset({200, 201, 204})
T = TypeVar("T")
MAX_LATE_READS = 20
"""Timed-out answers read at once per client: each holds one of the session's connections
(aiohttp's pool has 100), so a provider that stops answering cannot take them all."""


@dataclass(frozen=True)
class CallPolicy:
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    backoff_seconds: float = 0.2
    max_wait_seconds: float = 5.0
    """A rate-limit wait longer than this is not waited for: our caller is waiting on us."""

    @classmethod
    def of(cls, timeout_ms: int, max_attempts: int) -> CallPolicy:
        """From the provider's settings declared with `timeout_setting` and `attempts_setting`."""
        return cls(timeout_seconds=timeout_ms / 1000, max_attempts=max_attempts)

    @staticmethod
    def timeout_setting(prefix: str, provider: str, service: str) -> Any:
        """Declares `<prefix>_TIMEOUT_MS`, each call's timeout: 10 seconds, up to 10 minutes."""
        return setting(
            f"{prefix}_TIMEOUT_MS",
            10_000,
            f"`{provider}` provider: timeout of each call to {service}",
            minimum=1,
            maximum=600_000,
        )

    @staticmethod
    def attempts_setting(prefix: str, provider: str, which: str) -> Any:
        """Declares `<prefix>_MAX_ATTEMPTS`, `which` saying what is repeated: 3, up to 10."""
        return setting(
            f"{prefix}_MAX_ATTEMPTS",
            3,
            f"`{provider}` provider: attempts per call{which}",
            minimum=1,
            maximum=10,
        )


@dataclass(frozen=True)
class Answer:
    status: int
    body: object
    headers: CIMultiDictProxy[str] = field(repr=False)


@dataclass(frozen=True)
class _Failure:
    kind: ProviderFailure
    detail: str
    retry: bool
    wait: float | None = None
    sent: bool = True
    """Whether the request reached the service (so it may have acted on it)."""
    pending: asyncio.Task[_Exchanged] | None = None
    """A timed-out exchange still being read (`late` calls)."""


_Exchanged = tuple[int, str, CIMultiDictProxy[str]]
"""An answer as it came: its status, its text, its headers."""


@dataclass(frozen=True)
class _Request:
    method: str
    url: URL
    json_body: object
    form: aiohttp.FormData | None
    params: Mapping[str, str] | None
    headers: Mapping[str, str] = field(repr=False)


DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
"""When (event loop time) whoever waits on these calls stops waiting: a rate-limit wait longer
than what is left is not waited for. Unset, `CallPolicy.max_wait_seconds` bounds it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Calls made inside may wait for a rate limit up to `seconds` from now, all told."""
    token = DEADLINE.set(asyncio.get_running_loop().time() + seconds)
    try:
        yield
    finally:
        DEADLINE.reset(token)


def retry_after_seconds(headers: CIMultiDictProxy[str]) -> float | None:
    """`Retry-After` in seconds; its HTTP-date form is ignored (we back off instead)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_message(body: object) -> str | None:
    """The human-readable `message` (or `error`) of an error body, if it has one: cut to 200
    characters after any configured secret in it is redacted (never half a key)."""
    if isinstance(body, dict):
        for name in ("message", "error_description", "error"):
            value = body.get(name)
            if isinstance(value, str) and value:
                return redaction.redact_secrets(value)[:200]
    return None


DOT_SEGMENTS = frozenset({".", ".."})


def segment_problem(value: str) -> str | None:
    """Why `value` cannot travel as one URL path segment, or None.

    A normaliser drops a `.` segment and resolves `..` to the parent, so `/users/..` asks
    for `/`. Encoding the dots is no escape (yarl and many servers decode `%2E` first), so
    such a value is refused, as is one that becomes a dot segment once percent-decoded or
    NFKC-normalised (`%2e%2e`, the two-dot leader U+2025), and the empty one.
    """
    if not value:
        return "an empty value names nothing in a URL path"
    decoded = value
    while (once := unquote(decoded)) != decoded:
        decoded = once
    if unicodedata.normalize("NFKC", decoded) in DOT_SEGMENTS:
        return "'.' and '..' (in any spelling) would be dropped from a URL path"
    return None


class UnsafeSegment(ValueError):
    """A value that `url_path` cannot put in a path; `name` is its field in the template."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} cannot be sent in a URL path: {problem}")
        self.name = name


def url_path(template: str, **values: str) -> str:
    """`template` (already URL-encoded, as `/v2/rooms/{room_id}`) with each `{name}` replaced
    by its value as one whole, percent-encoded segment (`/` included); raises `UnsafeSegment`
    for a value `segment_problem` refuses."""
    encoded: dict[str, str] = {}
    for name, value in values.items():
        problem = segment_problem(value)
        if problem is not None:
            raise UnsafeSegment(name, problem)
        encoded[name] = quote(value, safe="")
    return template.format(**encoded)


class OutboundClient:
    """One service behind a plugin, reached over one `aiohttp.ClientSession`."""

    def __init__(
        self,
        provider: str,
        session: aiohttp.ClientSession,
        base_url: str,
        policy: CallPolicy,
        *,
        headers: Mapping[str, str] | None = None,
        rate_limit_wait: Callable[[CIMultiDictProxy[str]], float | None] = retry_after_seconds,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self.session = session
        self._base_url = str(URL(base_url)).rstrip("/")  # encoded once: paths are appended
        self._headers = dict(headers or {})
        self._rate_limit_wait = rate_limit_wait
        self._late: set[asyncio.Task[str | None]] = set()
        """Late answers being read (a strong reference keeps each task until it ends)."""

    async def close(self) -> None:
        for task in self._late:
            task.cancel()
        await asyncio.gather(*self._late, return_exceptions=True)
        await self.session.close()

    def read(self, operation: str, answer: Answer, parse: Callable[[object], T]) -> T:
        """Parse a 2xx body; a body of the wrong shape is a bad answer (502)."""
        try:
            return parse(answer.body)
        except UnexpectedAnswer as error:
            raise ProviderError(  # a 2xx: whatever was asked was done
                self.provider, operation, "bad_answer", f"unexpected answer: {error}",
                may_have_acted=True,
            ) from None  # fmt: skip

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        safe: bool,
        json_body: object = None,
        form: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        also_ok: Collection[int] = (),
        path_values: Mapping[str, str] | None = None,
        late: Callable[[Answer], str | None] | None = None,
    ) -> Answer:
        """One operation, with as many attempts as is safe; returns a 2xx (or `also_ok`) answer.

        `path` is URL-encoded; ids go in `path_values`, filled in by `url_path`. One it
        refuses is a bad answer (a caller's ids are refused before, so it came from a
        provider), and nothing is sent. With `late` (an unsafe call only: the id its answer
        names), a timeout's `ProviderError.late_id` is that id once the answer comes."""
        try:
            filled = url_path(path, **path_values) if path_values else path
        except UnsafeSegment as error:
            raise ProviderError(self.provider, operation, "bad_answer", str(error)) from None
        # Built as encoded: yarl would otherwise normalise it again (and decode %2E).
        url = URL(self._base_url + filled, encoded=True)
        request = _Request(
            method, url, json_body, form, params, {**self._headers, **(headers or {})}
        )
        for attempt in range(1, self.policy.max_attempts + 1):
            started = time.monotonic()
            outcome = await self._attempt(
                request, safe, also_ok,
                late is not None and not safe and len(self._late) < MAX_LATE_READS,
            )  # fmt: skip
            elapsed_ms = (time.monotonic() - started) * 1000
            if isinstance(outcome, Answer):
                log.debug(
                    "%s %s: %s in %.0f ms", self.provider, operation, outcome.status, elapsed_ms
                )
                return outcome
            log.info(
                "%s %s failed (attempt %d of %d, %.0f ms): %s",
                self.provider, operation, attempt, self.policy.max_attempts, elapsed_ms,
                outcome.detail,
            )  # fmt: skip
            pause = self._pause(attempt, outcome.wait)
            if not outcome.retry or attempt == self.policy.max_attempts or pause is None:
                late_id = None
                if outcome.pending is not None and late is not None:
                    late_id = self._read_late(operation, outcome.pending, also_ok, late)
                raise ProviderError(
                    self.provider, operation, outcome.kind, outcome.detail,
                    may_have_acted=outcome.sent and not safe, retry_after=outcome.wait,
                    late_id=late_id,
                )  # fmt: skip
            await asyncio.sleep(pause)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _attempt(
        self, request: _Request, safe: bool, also_ok: Collection[int], late: bool
    ) -> Answer | _Failure:
        """One request; with `late`, one that times out is still read (`_Failure.pending`)."""
        exchange = self._exchange(request, self._listening() if late else None)
        try:
            if late:
                pending = asyncio.ensure_future(exchange)
                try:
                    await asyncio.wait({pending}, timeout=self.policy.timeout_seconds)
                except asyncio.CancelledError:
                    pending.cancel()  # whoever waited is gone: nobody would read the answer
                    raise
                if not pending.done():
                    return self._timed_out(safe, pending)
                status, text, answer_headers = pending.result()
            else:
                status, text, answer_headers = await exchange
        except TimeoutError:
            return self._timed_out(safe)
        except aiohttp.ClientConnectorError:
            return _Failure("unreachable", "cannot connect", retry=True, sent=False)
        except aiohttp.ClientError as error:
            return _Failure(
                "unreachable", f"connection failed ({type(error).__name__})", retry=safe
            )
        except UnicodeDecodeError:
            return _Failure("bad_answer", "the answer is not text", retry=False)
        return self._outcome(status, text, answer_headers, safe, also_ok)

    async def _exchange(self, request: _Request, listening: float | None) -> _Exchanged:
        """The request and its answer, within the call's timeout (or `listening` seconds)."""
        timeout = aiohttp.ClientTimeout(total=listening or self.policy.timeout_seconds)
        form = request.form
        async with self.session.request(
            request.method, request.url, json=request.json_body if form is None else None,
            data=form, params=request.params, headers=request.headers, timeout=timeout,
        ) as response:  # fmt: skip
            return response.status, await response.text(), response.headers

    def _timed_out(self, safe: bool, pending: asyncio.Task[_Exchanged] | None = None) -> _Failure:
        detail = f"no answer within {self.policy.timeout_seconds:g} s"
        return _Failure("timeout", detail, retry=safe, pending=pending)

    def _outcome(
        self,
        status: int,
        text: str,
        answer_headers: CIMultiDictProxy[str],
        safe: bool,
        also_ok: Collection[int],
    ) -> Answer | _Failure:
        body = _decode(text)
        if status == 429:  # refused unprocessed: safe to send again
            wait = self._rate_limit_wait(answer_headers)
            return _Failure(
                "unreachable", "rate limited (HTTP 429)", retry=True, wait=wait, sent=False
            )
        if status in OK or status in also_ok:
            if body is _MALFORMED:
                return _Failure("bad_answer", f"the HTTP {status} answer is not JSON", retry=False)
            return Answer(status, body, answer_headers)
        message = error_message(body)
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        # A 4xx is a refusal: the service did nothing. A 5xx may come after it acted.
        return _Failure("bad_answer", detail, retry=safe and status >= 500, sent=status >= 500)

    def _listening(self) -> float:
        """How long a `late` call's answer is read: until the caller's deadline (`DEADLINE`),
        and at least the call's own timeout."""
        until = DEADLINE.get()
        left = 0.0 if until is None else until - asyncio.get_running_loop().time()
        return max(left, self.policy.timeout_seconds)

    def _read_late(
        self,
        operation: str,
        pending: asyncio.Task[_Exchanged],
        also_ok: Collection[int],
        late: Callable[[Answer], str | None],
    ) -> asyncio.Task[str | None]:
        """The id a timed-out call's answer names once it comes; None if none comes in time,
        or it is a failure, or it names nothing."""

        async def read() -> str | None:
            try:
                status, text, answer_headers = await pending
                outcome = self._outcome(status, text, answer_headers, False, also_ok)
                made = late(outcome) if isinstance(outcome, Answer) else None
            except Exception as error:  # no answer in time, or one that cannot be read
                log.info(
                    "%s %s: no late answer (%s)", self.provider, operation, type(error).__name__
                )
                return None
            log.info(
                "%s %s: its answer came late (%s)",
                self.provider,
                operation,
                "it names what was made" if made else "naming nothing",
            )
            return made

        task = asyncio.ensure_future(read())
        self._late.add(task)
        task.add_done_callback(self._late.discard)
        return task

    def _pause(self, attempt: int, wait: float | None) -> float | None:
        """How long to wait before the next attempt; None when the wait a rate limit asks for
        is longer than whoever waits on us can wait (what is left of `DEADLINE`)."""
        if wait is not None:
            return wait if wait <= self._patience() else None
        backoff: float = self.policy.backoff_seconds * 2.0 ** (attempt - 1)
        return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret

    def _patience(self) -> float:
        until = DEADLINE.get()
        if until is None:
            return self.policy.max_wait_seconds
        # Leave room for the call itself after the wait.
        return until - asyncio.get_running_loop().time() - self.policy.timeout_seconds


_MALFORMED = object()


def _decode(text: str) -> object:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return _MALFORMED
