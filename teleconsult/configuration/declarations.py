"""How a setting is declared, once, and read from a given environment with pydantic-settings.

A concern's settings are a `DeclaredSettings` class: each field is declared with
`setting(VARIABLE, default, meaning, ...)` (bounds and whether it is secret
included) and typed with the value types below, whose checks say what is wrong in
one phrase (`checks`). `from_environ` reads the variables from the mapping it is
given (never `os.environ` behind the caller's back; a secret also from
`<VARIABLE>_FILE`) and turns pydantic's first error into the one line the CLI
prints, naming the variable. The same declarations give `--help`, docs/settings.md's
table and the warning for a variable that looks like ours (`catalog`).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from typing import Annotated, Any, Self, get_args

import annotated_types
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from teleconsult.configuration import checks
from teleconsult.configuration.catalog import Setting
from teleconsult.configuration.checks import IPNetwork
from teleconsult.configuration.secrets import FILE_SUFFIX, secret_file
from teleconsult.errors import ConfigurationError

Boolean = Annotated[bool, BeforeValidator(checks.boolean)]
"""`true` or `false`, nothing else."""
WholeNumber = Annotated[int, BeforeValidator(checks.whole_number)]
"""An integer; its bounds are the declaration's `minimum` and `maximum`."""
HeaderName = Annotated[str, AfterValidator(checks.header_name)]
"""An HTTP header name, in lower case."""
CollectionName = Annotated[str, AfterValidator(checks.collection_name)]
"""A collection (table) name: 1 to 63 letters, digits, `_` or `-`."""
Names = Annotated[frozenset[str], BeforeValidator(checks.names)]
"""A comma-separated list of names (groups), blanks dropped."""
Origins = Annotated[frozenset[str], BeforeValidator(checks.origins)]
"""A comma-separated list of web origins, as browsers send them."""
Networks = Annotated[tuple[IPNetwork, ...], BeforeValidator(checks.networks)]
"""A comma-separated list of CIDRs."""
HttpsUrl = Annotated[str, AfterValidator(checks.https_url)]
"""An https URL (http to a loopback host only), as given."""
BaseUrl = Annotated[HttpsUrl, AfterValidator(lambda url: url.rstrip("/"))]
"""An https URL without its final slash, to which paths are appended."""


def setting(
    variable: str,
    default: Any,
    meaning: str,
    *,
    secret: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """Declare a field's environment variable: its default (a typed value), what it means
    (Markdown, one line), its bounds, and whether it holds a secret (then it may instead be
    in the file `<VARIABLE>_FILE` names, and it never shows in a repr)."""
    extra: dict[str, Any] = {
        "variable": variable,
        "meaning": meaning,
        "secret": secret,
        "aliases": list(aliases),
    }
    return Field(default, ge=minimum, le=maximum, repr=not secret, json_schema_extra=extra)


DAY_MS = 24 * 3600 * 1000


def kept_for_a_day(variable: str, meaning: str) -> Any:
    """Declare how long something is kept or retried, in milliseconds: a day by default, from
    a second to 30 days (longer is a typo, and what it keeps would pile up)."""
    return setting(variable, DAY_MS, meaning, minimum=1000, maximum=30 * DAY_MS)


def declaration(field: FieldInfo) -> Setting:
    """The `Setting` a field was declared as with `setting`."""
    extra = field.json_schema_extra
    if not isinstance(extra, dict) or "variable" not in extra:
        raise TypeError(f"{field!r} was not declared with setting(...)")
    bounds = {type(item): item for item in field.metadata}
    minimum = bounds.get(annotated_types.Ge)
    maximum = bounds.get(annotated_types.Le)
    return Setting(
        name=str(extra["variable"]),
        default=shown_default(field.default),
        meaning=str(extra["meaning"]),
        secret=bool(extra["secret"]),
        aliases=tuple(str(alias) for alias in extra["aliases"]),  # type: ignore[union-attr]
        minimum=int(minimum.ge) if isinstance(minimum, annotated_types.Ge) else None,  # type: ignore[call-overload]
        maximum=int(maximum.le) if isinstance(maximum, annotated_types.Le) else None,  # type: ignore[call-overload]
    )


def shown_default(value: object) -> str:
    """A default as the environment would spell it; "" for one that leaves the setting unset."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, frozenset | tuple | list):
        return ",".join(sorted(str(item) for item in value))
    return str(value)


class EnvironSource(PydanticBaseSettingsSource):
    """The declared variables in `environ`: stripped, a blank one unset (its default applies),
    an older spelling (`aliases`) read too, and a secret read from `<VARIABLE>_FILE` instead
    when that is set (never both)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def _text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        declared = declaration(field)
        value = next(
            (found for name in (declared.name, *declared.aliases) if (found := self._text(name))),
            None,
        )
        file_variable = declared.name + FILE_SUFFIX
        path = self._text(file_variable) if declared.secret else None
        if path is not None:
            if value is not None:
                raise ConfigurationError(f"Set {declared.name} or {file_variable}, not both.")
            value = secret_file(file_variable, path)
        return value, declared.name, False

    def __call__(self) -> dict[str, Any]:
        values = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values


class DeclaredSettings(BaseSettings):
    """The settings of one concern (the core's HTTP, store... or a plugin's), each field
    declared with `setting`; frozen once read. A check over several fields goes in `check`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given, which `from_environ` reads with `EnvironSource` from the
        mapping it is handed (tests and `create_app` pass their own): never os.environ or a
        .env file behind the caller's back."""
        return (init_settings,)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read the declared variables; a bad value raises `ConfigurationError` with one line."""
        values = EnvironSource(cls, environ)()
        try:
            return cls(**values)
        except ValidationError as error:
            raise ConfigurationError(error_line(cls, error.errors()[0])) from None

    @model_validator(mode="after")
    def _checked(self) -> Self:
        self.check()
        return self

    def check(self) -> None:
        """Checks over several variables, run once each is read (none here): a plugin's
        settings class overrides it to raise `ConfigurationError` with one whole line, so
        building the object is checking it, without I/O."""

    @classmethod
    def declared(cls) -> tuple[Setting, ...]:
        """Every variable of this concern, in declaration order."""
        return tuple(declaration(field) for field in cls.model_fields.values())

    def secret_values(self) -> tuple[str, ...]:
        """The secrets read (never a default: the store's is no secret), for redaction."""
        found = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if declaration(field).secret and value and value != field.default:
                found.append(str(value))
        return tuple(found)


class NoSettings(DeclaredSettings):
    """The settings of a provider that reads no variable of its own."""


def error_line(cls: type[BaseSettings], error: ErrorDetails) -> str:
    """pydantic's error as the one line the CLI prints: it names the variable, says what is
    wrong and what was read. The checks' phrases follow the name; pydantic's own errors
    (bounds, choices) are worded here, in one place."""
    kind, where, got = error["type"], error["loc"], error.get("input")
    reason = error.get("ctx", {}).get("error", error["msg"])
    if not where:  # a rule over several variables, worded whole
        return str(reason)
    field = cls.model_fields[str(where[0])]
    declared = declaration(field)
    if kind == "value_error":
        return f"{declared.name} {reason}"
    if kind in ("greater_than_equal", "less_than_equal"):
        number = got
        with suppress(TypeError, ValueError):
            number = int(got)
        return f"{declared.name} must be {declared.bounds}; got {number}."
    if kind == "literal_error":
        choices = ", ".join(str(choice) for choice in get_args(field.annotation))
        return f"{declared.name} must be one of {choices}; got {got!r}."
    return f"{declared.name} is not valid ({error['msg']}); got {got!r}."
