"""Logs as one JSON object per line, in pino's shape, with nothing a log must not hold.

Each line has a numeric `level` (10 trace ... 60 fatal), `time` in epoch ms,
`pid`, `hostname` and `msg` as pino writes them, and, while a request runs, its
`reqId` and (once known) its `callerId`. Every string of a line is redacted, by the
redactor of the app the line is written for (`observability.redaction`), before it is
written: by the formatter, or, for a line whose writer knows which of its values can hold
anything (the request line), by that writer, which says so with
`extra={"redacted": True}`. Domain events are info lines with an `event` field (see
`event`); a failure that repeats is logged when it starts and when it ends (`Outage`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import socket
import sys
from dataclasses import dataclass
from typing import TextIO

import orjson

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
HOSTNAME = socket.gethostname()


@dataclass
class RequestScope:
    """What every line written while a request runs carries: its id, and its caller once
    known. Mutable, so a caller learned deep in a handler reaches the "request completed"
    line the middleware writes."""

    request_id: str
    caller_id: str | None = None


_SCOPE: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "log_scope", default=None
)


def begin_request(request_id: str, redactor: redaction.Redactor | None = None) -> None:
    """Start a request's log scope: its id on every line, its own sensitive values, and the
    redactor of the app serving it (else the context's)."""
    _SCOPE.set(RequestScope(request_id))
    redaction.begin_scope()
    if redactor is not None:
        redaction.use(redactor)


def know_caller(caller_id: str | None) -> None:
    """The current request's caller: on every line it writes from now on (`callerId`)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.caller_id = caller_id


def event(log: logging.Logger, name: str, **fields: object) -> None:
    """One domain event, at info: `msg` and `event` say what happened, `fields` which
    ids it concerns (never names, links or tokens); None fields are left out."""
    given = {key: value for key, value in fields.items() if value is not None}
    log.info(name, extra={"fields": {"event": name, **given}})


class Outage:
    """A failure that repeats on every call while it lasts (a store that does not answer):
    a warning when it starts, debug lines while it lasts, an info line when it ends.

    Logging only: nothing depends on this state, and each replica has its own.
    """

    def __init__(self, log: logging.Logger, failing: str, recovered: str) -> None:
        self.log = log
        self.failing = failing
        self.recovered_message = recovered
        self.down = False

    def failed(self, reason: str, **fields: object) -> None:
        level = logging.DEBUG if self.down else logging.WARNING
        self.down = True
        self.log.log(level, "%s: %s", self.failing, reason, extra={"fields": fields})

    def recovered(self) -> None:
        if self.down:
            self.down = False
            self.log.info(self.recovered_message)


class PinoFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "level": PINO_LEVELS.get(record.levelno, 60),
            "time": int(record.created * 1000),
            "pid": record.process if record.process is not None else os.getpid(),
            "hostname": HOSTNAME,
            "logger": record.name,
        }
        scope = _SCOPE.get()
        if scope is not None:
            line["reqId"] = scope.request_id
            if scope.caller_id is not None:
                line["callerId"] = redaction.redact(scope.caller_id)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            if getattr(record, "redacted", False):  # its writer redacted what needed it
                line.update(fields)
            else:
                line.update({name: redaction.redacted(value) for name, value in fields.items()})
        line["msg"] = redaction.redact(record.getMessage())
        if record.exc_info:
            line["err"] = redaction.redact(
                self.formatException(record.exc_info), redaction.MAX_TRACEBACK_CHARS
            )
        return dumps(line)


ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Dates and dataclasses go through `str`, as `json.dumps(line, default=str)` writes them."""


def dumps(line: dict[str, object]) -> str:
    """The line as compact JSON, by orjson (a tenth of json's time). A line orjson cannot
    write (a key that is not a string, an integer past 64 bits) or that is not ASCII (json
    escapes it, so the line survives any stream encoding) is written by json."""
    try:
        text = orjson.dumps(line, default=str, option=ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(line, default=str)
    return text if text.isascii() else json.dumps(line, default=str)


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
