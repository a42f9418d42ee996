"""`SettingsReader`: the reader of a plugin's variables declared as `Setting`s.

The core's settings are `DeclaredSettings` classes; this reader stays for plugins
whose settings are still declared the older way, and applies the same checks
(`checks`), so every setting fails alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from teleconsult.configuration import catalog, checks
from teleconsult.configuration.catalog import Setting
from teleconsult.configuration.secrets import FILE_SUFFIX, secret_file
from teleconsult.errors import ConfigurationError


def whole_number(name: str, text: str, *, minimum: int, maximum: int | None = None) -> int:
    """The variable `name`'s value `text` as a bounded integer, or one line saying what is wrong."""
    try:
        number = int(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number; got {text!r}.") from None
    if number < minimum or (maximum is not None and number > maximum):
        bounds = Setting(name, "", "", minimum=minimum, maximum=maximum).bounds
        raise ConfigurationError(f"{name} must be {bounds}; got {number}.")
    return number


class SettingsReader:
    """Reads environment variables as the README documents them.

    An unset or blank variable takes its default from `defaults` (a mapping of names to
    defaults, or the `Setting`s declared); a bad value raises `ConfigurationError` with
    one line naming the variable. Secrets read with `secret` may come from a file
    (`<NAME>_FILE`) and are redacted wherever they would be written (logs, error bodies).
    """

    def __init__(
        self, environ: Mapping[str, str], defaults: Mapping[str, str] | Iterable[Setting]
    ) -> None:
        self._environ = environ
        self._defaults = (
            dict(defaults) if isinstance(defaults, Mapping) else catalog.defaults(defaults)
        )

    def text(self, name: str, value: str | None = None, default: str | None = None) -> str:
        """`value` (else the variable), or `default` (else the documented one) when empty."""
        if value is None:
            value = self._environ.get(name)
        if value is None or value.strip() == "":
            return default if default is not None else self._defaults.get(name, "")
        return value.strip()

    def secret(self, name: str) -> str:
        """A secret (an API key): read like `text`, or from the file `<name>_FILE` names (as
        container platforms mount secrets; surrounding blanks and the final newline dropped),
        never both. Its value is never written to a log or an answer."""
        file_variable = name + FILE_SUFFIX
        path = self.text(file_variable, default="")
        if not path:
            value = self.text(name)
        elif self.text(name, default=""):
            raise ConfigurationError(f"Set {name} or {file_variable}, not both.")
        else:
            value = secret_file(file_variable, path)
        return value

    def _checked(self, name: str, value: object, check: object) -> object:
        try:
            return check(value)  # type: ignore[operator]
        except ValueError as error:
            raise ConfigurationError(f"{name} {error}") from None

    def boolean(self, name: str) -> bool:
        return bool(self._checked(name, self.text(name), checks.boolean))

    def integer(self, name: str, *, minimum: int, maximum: int | None = None) -> int:
        return whole_number(name, self.text(name), minimum=minimum, maximum=maximum)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.text(name)
        if value not in choices:
            raise ConfigurationError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")
        return value

    def url(self, name: str, *, strip_slash: bool = True) -> str:
        """An https URL (plain http only to a loopback host, for tests and local runs), or ""
        when unset; without its final slash unless `strip_slash` is False."""
        value = self.text(name)
        if not value:
            return ""
        checked = checks.secure_url(name, value)
        return checked.rstrip("/") if strip_slash else checked

    def names(self, name: str) -> frozenset[str]:
        """A comma-separated list of names (groups), blanks dropped."""
        return frozenset(item.strip() for item in self.text(name).split(",") if item.strip())
