"""Logs as one JSON object per line, in pino's shape (numeric `level`, `time` in epoch ms, `msg`).

Log lines name ids and operations, never access links, tokens, keys or
participants' names: those are credentials and health data.
"""

from __future__ import annotations

import json
import logging
import sys

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


class PinoFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "level": PINO_LEVELS.get(record.levelno, 60),
            "time": int(record.created * 1000),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["err"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    logging.addLevelName(TRACE, "TRACE")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(PinoFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
