"""Marshmallow error messages as `path: message` lines a caller or operator can act on."""

from __future__ import annotations

import json

from teleconsult.errors import JSONTextError


def error_lines(messages: object, path: str = "", root: str = "$") -> list[str]:
    """Flatten marshmallow's nested errors: `{"a": {0: {"b": ["Bad."]}}}` -> `["a[0].b: Bad."]`.

    Errors about the whole document are named `root`.
    """
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            elif key == "_schema":
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            lines.extend(error_lines(value, child, root))
        return lines
    if isinstance(messages, list):
        return [line for item in messages for line in error_lines(item, path, root)]
    return [f"{path or root}: {messages}"]


MAX_REPORTED_PROBLEMS = 20
"""An answer lists at most this many problems: a huge invalid body gets a short answer."""


def problems(messages: object, root: str) -> str:
    """Marshmallow's errors as one message: the first problems, and how many more there are."""
    lines = error_lines(messages, root=root)
    shown = "; ".join(lines[:MAX_REPORTED_PROBLEMS])
    hidden = len(lines) - MAX_REPORTED_PROBLEMS
    return f"{shown}; and {hidden} more problem{'s' if hidden > 1 else ''}" if hidden > 0 else shown


def strict_json(text: str) -> object:
    """Parse JSON, refusing what would break later: repeated keys, deep nesting, lone surrogates."""
    try:
        value = json.loads(text, object_pairs_hook=_without_duplicate_keys)
    except RecursionError:
        raise JSONTextError("it is nested too deeply") from None
    except json.JSONDecodeError as error:
        raise JSONTextError(str(error)) from None
    except ValueError as error:  # an integer past Python's digit limit, say
        raise JSONTextError(str(error).split(";")[0]) from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JSONTextError("it holds an invalid \\u escape (an unpaired surrogate)") from None
    return value


def _without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise JSONTextError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result
