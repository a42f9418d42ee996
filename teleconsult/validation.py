"""Marshmallow error messages as `path: message` lines a caller or operator can act on."""

from __future__ import annotations

import json

from teleconsult.errors import InvalidRequest, JSONTextError, Problem


def error_problems(messages: object, path: str = "", root: str = "$") -> list[Problem]:
    """Flatten marshmallow's nested errors:
    `{"a": {0: {"b": ["Bad."]}}}` -> `[{"path": "a[0].b", "message": "Bad."}]`.

    Errors about the whole document are named `root`.
    """
    if isinstance(messages, dict):
        found: list[Problem] = []
        for key, value in messages.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            elif key == "_schema":
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            found.extend(error_problems(value, child, root))
        return found
    if isinstance(messages, list):
        return [line for item in messages for line in error_problems(item, path, root)]
    return [Problem(path=path or root, message=str(messages))]


def error_lines(messages: object, root: str = "$") -> list[str]:
    """Marshmallow's errors as `path: message` lines (for a configuration file's errors)."""
    return [f"{p['path']}: {p['message']}" for p in error_problems(messages, root=root)]


MAX_REPORTED_PROBLEMS = 20
"""An answer lists at most this many problems: a huge invalid body gets a short answer."""


def invalid(messages: object, root: str) -> InvalidRequest:
    """Marshmallow's errors as a 400: the first problems in `details` and in one message,
    which says how many more there are."""
    found = error_problems(messages, root=root)
    shown = found[:MAX_REPORTED_PROBLEMS]
    message = "; ".join(f"{p['path']}: {p['message']}" for p in shown)
    hidden = len(found) - MAX_REPORTED_PROBLEMS
    if hidden > 0:
        message += f"; and {hidden} more problem{'s' if hidden > 1 else ''}"
    return InvalidRequest(message, details=tuple(shown))


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
