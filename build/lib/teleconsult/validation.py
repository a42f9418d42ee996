"""Marshmallow error messages as `path: message` lines a caller or operator can act on."""

from __future__ import annotations


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
