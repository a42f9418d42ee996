"""Logs as one JSON object per line, in pino's shape, with nothing a log must not hold.

Each line has a numeric `level` (10 trace ... 60 fatal), `time` in epoch ms,
`msg`, and the `reqId` of the request it belongs to. Every string of a line is
redacted (`observability.redaction`) before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

from teleconsult.observability import redaction

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
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def begin_request(request_id: str) -> None:
    """Start a request's log scope: its id on every line, and its own sensitive values."""
    REQUEST_ID.set(request_id)
    redaction.begin_scope()


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
            line.update({name: redaction.redacted(value) for name, value in fields.items()})
        line["msg"] = redaction.redact(record.getMessage())
        if record.exc_info:
            line["err"] = redaction.redact(
                self.formatException(record.exc_info), redaction.MAX_TRACEBACK_CHARS
            )
        return json.dumps(line, default=str)


class MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot parse at error level with a traceback; make it one
    warning line (the request is the client's fault, and its bytes are redacted anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed HTTP request: %s", (error.message,)
            record.exc_info, record.exc_text = None, None
        return True


CHATTY_LOGGERS = ("aiosqlite", "pymongo", "asyncio")
"""Libraries that log whole statements or documents (names, links) at debug, from threads
where no request scope can redact them: they log warnings and errors only."""


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(PinoFormatter())
    handler.addFilter(MalformedRequests())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, LEVELS[level]))
