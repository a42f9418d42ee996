"""Logs as one JSON object per line, in pino's shape, with nothing a log must not hold.

Each line has a numeric `level` (10 trace ... 60 fatal), `time` in epoch ms,
`msg`, and the `reqId` of the request it belongs to. Before a line is written it
is redacted: access links, bearer tokens and JWTs, API keys, passwords in URLs,
and every value the current request marked sensitive (participants' names, the
links it handed out, its Authorization and Cookie headers) become `[redacted]`.
Links are bearer credentials and names are health data; redaction is the last
line of defence, the first being never to log them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

TRACE = 5
PINO_LEVELS = {
    TRACE: 10,
    logging.DEBUG: 20,
    logging.INFO: 30,
    logging.WARNING: 40,
    logging.ERROR: 50,
}
LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "silent": logging.CRITICAL + 10,
}
REDACTED = "[redacted]"

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SENSITIVE: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "sensitive", default=None
)

_PATTERNS = [
    # Join links of any provider: a bearer credential in a URL.
    re.compile(r"[^\s\"'<>]*(?:direct-rest-call-handler|fake-video/join)/(?!\{)[^\s\"'<>;,]*"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(
        r"(?i)((?:api[-_]?key|apikey|access_token|client_secret|password|secret|token|cookie|"
        r"authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
    ),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
]


def begin_request(request_id: str) -> None:
    """Start a request's log scope: its id on every line, and its own sensitive values."""
    REQUEST_ID.set(request_id)
    _SENSITIVE.set(set())


def sensitive(values: Iterable[str | None]) -> None:
    """Mark values of the current request that must never be written (names, links, tokens)."""
    found = _SENSITIVE.get()
    if found is not None:
        found.update(value for value in values if value and len(value) >= 3)


def redact(text: str) -> str:
    for value in sorted(_SENSITIVE.get() or (), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_keep_label, text)
    return text


def _keep_label(match: re.Match[str]) -> str:
    label = match.group(1) if match.re.groups else ""
    return f"{label}{REDACTED}"


def _redacted(value: object) -> object:
    """Every string inside structured fields, redacted (a request's url can hold a link)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


class PinoFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "level": PINO_LEVELS.get(record.levelno, 60),
            "time": int(record.created * 1000),
            "logger": record.name,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["reqId"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({name: _redacted(value) for name, value in fields.items()})
        line["msg"] = redact(record.getMessage())
        if record.exc_info:
            line["err"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


CHATTY_LOGGERS = ("aiosqlite", "pymongo", "asyncio")
"""Libraries that log whole statements or documents (names, links) at debug, from threads
where no request scope can redact them: they log warnings and errors only."""


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(PinoFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, LEVELS[level]))
