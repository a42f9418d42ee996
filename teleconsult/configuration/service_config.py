"""The JSON service configuration (TELECONSULTATION_SERVICE_CONFIG_PATH), validated by a schema.

Errors name the file and the JSON path at fault, so an operator can fix the file
from the one line the service prints before it stops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from teleconsult.configuration.callpage import Branding, Colors
from teleconsult.configuration.provider_config import ProviderConfig, UserIdMapping
from teleconsult.core.domain import TOOLS, Privilege, Privileges
from teleconsult.core.events import EVENT_TYPES
from teleconsult.errors import ConfigurationError
from teleconsult.validation import error_lines

Extract = Literal["object", "json", "array"]


@dataclass(frozen=True)
class PathStep:
    """One step of `userIdPathInRequest`: read `source` from the current value."""

    source: str | int
    extract: Extract


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook endpoint of the configuration file's `webhooks`."""

    name: str
    url: str
    events: frozenset[str]
    """The event types it receives (all when the file names none)."""
    secret_file: str | None
    """Where its signing secret is; None: WEBHOOK_SECRET's."""


@dataclass(frozen=True)
class ServiceConfig:
    privileges: Privileges
    groups_with_background: frozenset[str]
    user_id_path: tuple[PathStep, ...] | None
    """None means the default: the header named by USERID_HEADER_KEY."""
    providers: ProviderConfig
    webhooks: tuple[WebhookConfig, ...] = ()
    branding: Branding = field(default_factory=Branding)
    """The call page's look: `theme`, `companyLogo.url`, `mode`."""


DEFAULT_CONFIG: dict[str, Any] = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": dict.fromkeys(TOOLS, True)},
        "plus": {"groups": ["doctor"], "tools": dict.fromkeys(TOOLS, True)},
    },
    "environment": "sandbox",
}


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Switch(fields.Boolean):
    """A JSON true or false: "on", 1 and "yes" are typos here, not booleans."""

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _switch() -> fields.Boolean:
    return _Switch(load_default=False)


class _Tools(_Strict):
    chat = _switch()
    screen_sharing = _switch()
    file_upload = _switch()
    whiteboard = _switch()
    snapshot = _switch()
    live_edit = _switch()
    live_pointer = _switch()
    present_to_everyone = _switch()


def _groups(**kwargs: Any) -> fields.List:
    """A non-empty list of non-empty group names."""
    return fields.List(
        fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1), **kwargs
    )


class _Privilege(_Strict):
    groups = _groups(required=True)
    tools = fields.Nested(_Tools, load_default=lambda: dict.fromkeys(TOOLS, True))

    @post_load
    def to_privilege(self, data: dict[str, Any], **_: Any) -> Privilege:
        enabled = frozenset(name for name, on in data["tools"].items() if on)
        return Privilege(groups=frozenset(data["groups"]), tools=enabled)


class _Privileges(_Strict):
    basic = fields.Nested(_Privilege, required=True)
    plus = fields.Nested(_Privilege, required=True)

    @post_load
    def to_privileges(self, data: dict[str, Any], **_: Any) -> Privileges:
        return Privileges(basic=data["basic"], plus=data["plus"])


def _color() -> fields.String:
    """A CSS hex colour (`#0b5cad`, `#fff`): written into the page's style sheet as is."""
    return fields.String(
        validate=validate.Regexp(
            r"^#(?:[0-9a-fA-F]{3}){1,2}$", error="Use a hex colour: #rrggbb or #rgb."
        )
    )


class _Colors(_Strict):
    primaryColor = _color()
    accentColor = _color()

    @post_load
    def to_colors(self, data: dict[str, Any], **_: Any) -> Colors:
        return Colors(primary=data.get("primaryColor"), accent=data.get("accentColor"))


class _Theme(_Strict):
    light = fields.Nested(_Colors)
    dark = fields.Nested(_Colors)


class _CompanyLogo(_Strict):
    url = fields.Url(required=True, schemes={"http", "https"})


def _is_step_source(value: object) -> bool:
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    )


class _PathStep(_Strict):
    source = fields.Raw(data_key="from", required=True)
    extract = fields.String(required=True, validate=validate.OneOf(["object", "json", "array"]))

    @post_load
    def to_step(self, data: dict[str, Any], **_: Any) -> PathStep:
        if not _is_step_source(data["source"]):
            raise ValidationError("Must be a non-empty string or an index.", "from")
        return PathStep(source=data["source"], extract=data["extract"])


class _CustomUserId(_Strict):
    source = fields.String(load_default="_id")
    target = fields.String(load_default="authUserId")


class _Webhook(_Strict):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9_-]{1,32}$", error="Use 1 to 32 lowercase letters, digits, '_' or '-'."
        ),
    )
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)), validate=validate.Length(min=1)
    )
    secretFile = fields.String(validate=validate.Length(min=1))

    @post_load
    def to_webhook(self, data: dict[str, Any], **_: Any) -> WebhookConfig:
        return WebhookConfig(
            name=data["name"],
            url=data["url"],
            events=frozenset(data.get("events", EVENT_TYPES)),
            secret_file=data.get("secretFile"),
        )


class _ServiceConfig(_Strict):
    privileges = fields.Nested(_Privileges, required=True)
    environment = fields.String(
        load_default="sandbox", validate=validate.OneOf(["sandbox", "production"])
    )
    # The call page's look (Branding): colours, logo, a forced colour scheme.
    theme = fields.Nested(_Theme)
    companyLogo = fields.Nested(_CompanyLogo)
    mode = fields.String(validate=validate.OneOf(["light", "dark"]))
    groupsWithBackgroundList = _groups()
    userIdPathInRequest = fields.List(fields.Nested(_PathStep), validate=validate.Length(min=1))
    customUserId = fields.Nested(_CustomUserId, load_default=lambda: _CustomUserId().load({}))
    webhooks = fields.List(fields.Nested(_Webhook), validate=validate.Length(max=16))


def parse_config(raw: object, origin: str) -> ServiceConfig:
    """Validate a decoded JSON document; `origin` names it in error messages."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{origin}: the configuration must be a JSON object.")
    try:
        data = _ServiceConfig().load(raw)
    except ValidationError as error:
        raise ConfigurationError(f"{origin}: {error_lines(error.messages)[0]}") from None
    steps = data.get("userIdPathInRequest")
    return ServiceConfig(
        privileges=data["privileges"],
        groups_with_background=frozenset(data.get("groupsWithBackgroundList", ())),
        user_id_path=tuple(steps) if steps else None,
        providers=ProviderConfig(
            environment=data["environment"],
            user_id_mapping=UserIdMapping(
                source=data["customUserId"]["source"], target=data["customUserId"]["target"]
            ),
        ),
        webhooks=tuple(data.get("webhooks", ())),
        branding=Branding(
            light=data.get("theme", {}).get("light", Colors()),
            dark=data.get("theme", {}).get("dark", Colors()),
            logo_url=data.get("companyLogo", {}).get("url"),
            mode=data.get("mode"),
        ),
    )


def load_config(path: Path | None) -> ServiceConfig:
    """The configuration in `path`, or the built-in default when no path is given."""
    if path is None:
        return parse_config(DEFAULT_CONFIG, "built-in default configuration")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"{path}: not UTF-8 text (byte {error.start} cannot be decoded)."
        ) from None
    except OSError as error:
        raise ConfigurationError(
            f"{path}: cannot read the configuration: {error.strerror}."
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}."
        ) from None
    except ValueError as error:  # an integer past Python's digit limit, say
        raise ConfigurationError(f"{path}: not valid JSON: {str(error).split(';')[0]}.") from None
    return parse_config(raw, str(path))
