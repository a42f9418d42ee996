"""Who is calling: the caller's external id, found through `userIdPathInRequest`.

Each step reads from the current value: `object` a field (the first step reads
the request's `headers`, whose names are case-insensitive), `json` parses the
current string as JSON and reads a field, `array` reads an index. Anything that
does not lead to a non-empty id (missing header, bad JSON, wrong type) means
the caller is unknown: None, which the service answers with 401.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from teleconsult.configuration.service_config import PathStep
from teleconsult.errors import JSONTextError
from teleconsult.validation import strict_json


def default_path(userid_header_key: str) -> tuple[PathStep, ...]:
    return (PathStep("headers", "object"), PathStep(userid_header_key, "object"))


def caller_id(headers: Mapping[str, str], steps: Sequence[PathStep]) -> str | None:
    current: object = {"headers": headers}
    for step in steps:
        current = _read(current, step)
        if current is None:
            return None
    if isinstance(current, bool):
        return None
    if isinstance(current, int):
        return str(current)
    return current if isinstance(current, str) and current else None


def _read(current: object, step: PathStep) -> object | None:
    if step.extract == "json":
        if not isinstance(current, str):
            return None
        try:
            current = strict_json(current)
        except JSONTextError:
            return None
        return _field(current, step.source)
    if step.extract == "array":
        if not isinstance(current, list) or isinstance(step.source, bool):
            return None
        try:
            index = int(step.source)
        except ValueError:
            return None
        return current[index] if 0 <= index < len(current) else None
    return _field(current, step.source)


def _field(current: object, name: str | int) -> object | None:
    if isinstance(current, Mapping):  # request headers are a case-insensitive mapping
        return current.get(str(name))
    return None
