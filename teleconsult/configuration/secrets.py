"""Secrets from files (`<NAME>_FILE`, as container platforms mount them) and placeholders.

Reading a secret never writes it anywhere: every error names the variable and the
path, never what the file holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from teleconsult.errors import ConfigurationError

FILE_SUFFIX = "_FILE"
MAX_SECRET_FILE_BYTES = 64 * 1024
"""A secret file larger than this is not a secret file (a key in PEM form is a few KB)."""


def secret_file(variable: str, path: str) -> str:
    """The secret in the file at `path`, surrounding blanks and the final newline dropped."""
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise ConfigurationError(f"Cannot read {variable} {path!r}: {reason}.") from None
    if len(content) > MAX_SECRET_FILE_BYTES:
        raise ConfigurationError(
            f"{variable} {path!r} is larger than {MAX_SECRET_FILE_BYTES // 1024} KB: not a secret."
        )
    try:
        value = content.decode().strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"{variable} {path!r} is not UTF-8 text.") from None
    if not value:
        raise ConfigurationError(f"{variable} {path!r} is empty.")
    return value


def read_secret_file(variable: str, path: str) -> str:
    """The secret in the file at `path` (see `secret_file`); the app's redactor keeps it
    out of logs (`composition.planned`)."""
    return secret_file(variable, path)


def placeholder_variables(
    environ: Mapping[str, str], secrets: Iterable[str] = ()
) -> tuple[str, ...]:
    """The variables still set to a placeholder (`CHANGE_ME`, `changeme`, `<change-me>`...),
    and the `<NAME>_FILE` of each secret in `secrets` whose file holds one (as a mounted
    Secret made from the shipped examples would): a replica that runs with one is not
    ready, so an example deployed as shipped serves nothing rather than failing on every
    call. A file that cannot be read is not judged here: reading the secret says why."""
    found = {name for name, value in environ.items() if _is_placeholder(value)}
    for name in secrets:
        variable = name + FILE_SUFFIX
        path = environ.get(variable, "").strip()
        if path and variable not in found:
            with contextlib.suppress(ConfigurationError):
                if _is_placeholder(secret_file(variable, path)):
                    found.add(variable)
    return tuple(sorted(found))


def _is_placeholder(value: str) -> bool:
    return "".join(c for c in value.upper() if c.isalnum()) == "CHANGEME"
