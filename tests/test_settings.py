"""Environment variables and the configuration file: defaults, and one clear line when wrong."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import astuple
from datetime import timedelta
from pathlib import Path

import pytest

from teleconsult.composition import planned
from teleconsult.configuration.access import AccessSettings
from teleconsult.configuration.callpage import Branding, CallPageSettings, Colors
from teleconsult.configuration.declarations import (
    BaseUrl,
    DeclaredSettings,
    WholeNumber,
    setting,
)
from teleconsult.configuration.fhir import FhirSettings
from teleconsult.configuration.http import HttpSettings
from teleconsult.configuration.ice import IceSettings
from teleconsult.configuration.retention import RetentionSettings
from teleconsult.configuration.rooms import RoomSettings
from teleconsult.configuration.service import ServiceSettings
from teleconsult.configuration.service_config import (
    DEFAULT_CONFIG,
    PathStep,
    load_config,
    parse_config,
)
from teleconsult.configuration.settings import CONCERNS, Settings
from teleconsult.configuration.store import StoreSettings
from teleconsult.configuration.tokens import TokenSettings
from teleconsult.configuration.webhooks import WebhookSettings
from teleconsult.core.domain import TOOLS, Privilege, Privileges, RoomPolicy
from teleconsult.errors import ConfigurationError
from teleconsult.observability.redaction import Redactor
from tests.helpers import Refusal


def test_defaults() -> None:
    settings = Settings.from_environ({})
    assert settings == Settings(
        service=ServiceSettings(
            log_level="info", video_provider="webrtc", identity_provider="static", config_path=None
        ),
        http=HttpSettings(
            host="127.0.0.1",
            port=3000,
            read_timeout_ms=30000,
            shutdown_grace_ms=25000,
            cors_allowed_origins=frozenset(),
            trusted_proxies=(),
        ),
        store=StoreSettings(
            url="sqlite:///teleconsult.db",
            mongodb_database=None,
            mongodb_timeout_ms=5000,
            teleconsultations_collection="teleconsultations",
            user_map_collection="users",
            sqlite_busy_timeout_ms=5000,
            sqlite_synchronous="full",
        ),
        access=AccessSettings(
            userid_header_key="miauserid",
            groups_header_key="miausergroups",
            manager_groups=frozenset(),
            admin_groups=frozenset(),
            allow_anonymous_writes=False,
            idempotency_key_ttl_ms=86400000,
            idempotency_max_keys_per_caller=10000,
        ),
        tokens=TokenSettings(
            audience=None,
            jwks_url=None,
            issuer=None,
            user_id_claim="sub",
            groups_claim="groups",
            jwks_ttl_ms=600000,
        ),
        rooms=RoomSettings(
            unlimited=True,
            live=True,
            immutable_period_ms=0,
            default_recording_type="none",
            delete_uploads=False,
            no_show_after_ms=600_000,
            reconcile_interval_ms=10000,
            wait_refresh_ms=1000,
        ),
        webhooks=WebhookSettings(
            url=None, secret=None, timeout_ms=5000, max_age_ms=86400000, poll_interval_ms=1000
        ),
        retention=RetentionSettings(
            trashed_days=30, ended_days=None, audit_days=365, webhook_days=30
        ),
        call_page=CallPageSettings(
            frame_ancestors=frozenset(), texts_dir="", default_language="en"
        ),
        ice=IceSettings(stun_urls="", turn_urls="", turn_secret="", ice_transport_policy="all"),
        fhir=FhirSettings(
            actor_groups="Practitioner:doctor,PractitionerRole:doctor,Patient:patient,"
            "RelatedPerson:patient",
            base_url=None,
        ),
    )
    assert settings.rooms.policy == RoomPolicy(
        unlimited=True, live=True, recording="none", immutable_period=timedelta(0)
    )


def test_trusted_proxies_are_cidrs() -> None:
    settings = Settings.from_environ({"TRUSTED_PROXIES": " 10.0.0.0/8, 192.168.1.7 ,fd00::/8"})
    assert settings.http.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_environ({"TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"})
    assert str(refused.value) == (
        "TRUSTED_PROXIES must be comma-separated CIDRs like 10.0.0.0/8; got 'proxy.local'."
    )


def test_values_are_read() -> None:
    settings = Settings.from_environ(
        {
            "HTTP_PORT": "8080",
            "UNLIMITED_TELECONSULTATION": "false",
            "IMMUTABLE_PERIOD_MS": "600000",
            "USERID_HEADER_KEY": "X-User",
            "USER_MAP_ID_CRUD_NAME": "user-map",
            "TELECONSULTATION_SERVICE_CONFIG_PATH": "/etc/teleconsult.json",
        }
    )
    assert settings.http.port == 8080
    assert settings.rooms.unlimited is False
    assert settings.rooms.immutable_period_ms == 600000
    assert settings.access.userid_header_key == "x-user"
    assert settings.store.user_map_collection == "user-map"  # the original docs' other spelling
    assert settings.service.config_path == Path("/etc/teleconsult.json")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("UNLIMITED_TELECONSULTATION", "yes", "UNLIMITED_TELECONSULTATION must be true or false; got 'yes'."),
        ("LIVE_TELECONSULTATION", "True", "LIVE_TELECONSULTATION must be true or false; got 'True'."),
        ("HTTP_PORT", "http", "HTTP_PORT must be a whole number; got 'http'."),
        ("HTTP_PORT", "70000", "HTTP_PORT must be at least 0 and at most 65535; got 70000."),
        ("IMMUTABLE_PERIOD_MS", "-1", "IMMUTABLE_PERIOD_MS must be at least 0 and at most 2592000000; got -1."),
        ("IMMUTABLE_PERIOD_MS", "99999999999999999999", "IMMUTABLE_PERIOD_MS must be at least 0 and at most 2592000000; got 99999999999999999999."),
        ("USERID_HEADER_KEY", "bad header", "USERID_HEADER_KEY must be an HTTP header name; got 'bad header'."),
        ("IMMUTABLE_PERIOD_MS", "1.5", "IMMUTABLE_PERIOD_MS must be a whole number; got '1.5'."),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL must be one of trace, debug, info, warn, error, silent; got 'verbose'."),
        ("DEFAULT_RECORDING_TYPE", "always", "DEFAULT_RECORDING_TYPE must be one of none, manual, automatic; got 'always'."),
        ("TELECONSULTATIONS_CRUD_NAME", "a b", "TELECONSULTATIONS_CRUD_NAME must be 1 to 63 letters, digits, '_' or '-'; got 'a b'."),
        ("USER_ID_MAP_CRUD_NAME", 'x";drop', "USER_ID_MAP_CRUD_NAME must be 1 to 63 letters, digits, '_' or '-'; got 'x\";drop'."),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({name: value})
    assert str(raised.value) == message


def test_the_built_in_configuration() -> None:
    config = load_config(None)
    everything = frozenset(TOOLS)
    assert config.privileges == Privileges(
        basic=Privilege(groups=frozenset({"patient"}), tools=everything),
        plus=Privilege(groups=frozenset({"doctor"}), tools=everything),
    )
    assert config.providers.environment == "sandbox"
    assert config.user_id_path is None
    assert astuple(config.providers.user_id_mapping) == ("_id", "authUserId")


def test_a_full_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "privileges": {
                    "basic": {"groups": ["patient"], "tools": {"chat": True}},
                    "plus": {"groups": ["doctor", "nurse"]},
                },
                "environment": "production",
                "theme": {"light": {"primaryColor": "#fff", "accentColor": "#000"}},
                "companyLogo": {"url": "https://example.com/logo.png"},
                "mode": "dark",
                "groupsWithBackgroundList": ["doctor"],
                "userIdPathInRequest": [
                    {"from": "headers", "extract": "object"},
                    {"from": "ids", "extract": "object"},
                    {"from": 0, "extract": "array"},
                ],
                "customUserId": {"source": "email", "target": "user_id"},
            }
        )
    )
    config = load_config(path)
    assert config.privileges.basic == Privilege(frozenset({"patient"}), frozenset({"chat"}))
    assert config.privileges.plus.groups == frozenset({"doctor", "nurse"})
    assert config.privileges.plus.tools == frozenset(TOOLS)
    assert config.providers.environment == "production"
    assert config.groups_with_background == frozenset({"doctor"})
    assert config.user_id_path == (
        PathStep("headers", "object"),
        PathStep("ids", "object"),
        PathStep(0, "array"),
    )
    assert astuple(config.providers.user_id_mapping) == ("email", "user_id")
    assert config.branding == Branding(
        light=Colors(primary="#fff", accent="#000"),
        logo_url="https://example.com/logo.png",
        mode="dark",
    )


def _without(key: str) -> dict[str, object]:
    privileges = json.loads(json.dumps(DEFAULT_CONFIG["privileges"]))
    del privileges["plus"][key]
    return {"privileges": privileges}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "privileges: Missing data for required field."),
        (_without("groups"), "privileges.plus.groups: Missing data for required field."),
        (
            {"privileges": {"basic": {"groups": []}, "plus": {"groups": ["d"]}}},
            "privileges.basic.groups: Shorter than minimum length 1.",
        ),
        (
            {"privileges": {"basic": {"groups": ["p"], "tools": {"chat": "on"}}, "plus": {"groups": ["d"]}}},
            "privileges.basic.tools.chat: Not a valid boolean.",
        ),
        (
            {"privileges": {"basic": {"groups": ["p"], "tools": {"teleport": True}}, "plus": {"groups": ["d"]}}},
            "privileges.basic.tools.teleport: Unknown field.",
        ),
        (
            {**DEFAULT_CONFIG, "environment": "staging"},
            "environment: Must be one of: sandbox, production.",
        ),
        (
            {**DEFAULT_CONFIG, "userIdPathInRequest": [{"from": "headers", "extract": "xml"}]},
            "userIdPathInRequest[0].extract: Must be one of: object, json, array.",
        ),
        (
            {**DEFAULT_CONFIG, "userIdPathInRequest": [{"from": "", "extract": "object"}]},
            "userIdPathInRequest[0].from: Must be a non-empty string or an index.",
        ),
        ([], "the configuration must be a JSON object."),
    ],
)  # fmt: skip
def test_a_bad_configuration_names_the_json_path(document: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_config(document, "/etc/teleconsult.json")
    assert str(raised.value) == f"/etc/teleconsult.json: {message}"


def test_a_configuration_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"privileges": ')
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: not valid JSON at line 1, column 16: Expecting value."


def test_a_configuration_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"environment": "\xff"}')
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: not UTF-8 text (byte 17 cannot be decoded)."


def test_a_huge_integer_in_the_configuration_file_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"environment": ' + "9" * 5000 + "}")
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    assert str(raised.value) == (
        f"{path}: not valid JSON: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits."
    )


def test_a_missing_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigurationError) as raised:
        load_config(path)
    assert str(raised.value) == f"{path}: cannot read the configuration: No such file or directory."


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"LIVE_TELECONSULTATION": "1"},
            "teleconsult: configuration error: LIVE_TELECONSULTATION must be true or false; got '1'.",
        ),
        (
            {"VIDEO_PROVIDER": "zoom"},
            "teleconsult: configuration error: VIDEO_PROVIDER='zoom' names no installed video "
            "provider (installed: bandyer, fake, jitsi, livekit, webrtc).",
        ),
        (
            {"VIDEO_PROVIDER": "webrtc", "WEBRTC_TURN_URLS": "turn:turn.example.org"},
            "teleconsult: configuration error: WEBRTC_TURN_URLS needs WEBRTC_TURN_SECRET, the "
            "TURN server's static-auth-secret.",
        ),
        (
            {"WEBRTC_ICE_TRANSPORT_POLICY": "relay"},
            "teleconsult: configuration error: WEBRTC_ICE_TRANSPORT_POLICY=relay needs "
            "WEBRTC_TURN_URLS and WEBRTC_TURN_SECRET: without a TURN server no call could connect.",
        ),
        (
            {"WEBRTC_ICE_TRANSPORT_POLICY": "turn"},
            "teleconsult: configuration error: WEBRTC_ICE_TRANSPORT_POLICY must be one of all, "
            "relay; got 'turn'.",
        ),
        (
            {"STORE_URL": "postgres://db/teleconsult"},
            "teleconsult: configuration error: STORE_URL has a scheme no store handles; use "
            "sqlite:///<path>, mongodb://... or mongodb+srv://...",
        ),
        (
            {"VIDEO_PROVIDER": "bandyer", "BANDYER_API_SECRET_KEY": "k"},
            "teleconsult: configuration error: VIDEO_PROVIDER=bandyer needs BANDYER_BASE_URL, the "
            "Kaleyra v2 API base URL (for example https://api.sandbox.eu.bandyer.com).",
        ),
        (
            {"VIDEO_PROVIDER": "bandyer", "BANDYER_BASE_URL": "https://api.eu.bandyer.com"},
            "teleconsult: configuration error: VIDEO_PROVIDER=bandyer needs "
            "BANDYER_API_SECRET_KEY (or BANDYER_API_SECRET_KEY_FILE), the Kaleyra API key.",
        ),
        (
            {"BANDYER_API_SECRET_KEY": "k", "BANDYER_BASE_URL": "api.eu.bandyer.com"},
            "teleconsult: configuration error: BANDYER_BASE_URL must be an https URL; got "
            "'api.eu.bandyer.com'.",
        ),
        (
            {"BANDYER_API_SECRET_KEY": "k", "BANDYER_BASE_URL": "http://api.eu.bandyer.com"},
            "teleconsult: configuration error: BANDYER_BASE_URL must be an https URL (http is "
            "accepted for a loopback host only); got 'http://api.eu.bandyer.com'.",
        ),
        (
            {
                "BANDYER_API_SECRET_KEY": "k",
                "BANDYER_BASE_URL": "https://x",
                "BANDYER_TIMEOUT_MS": "soon",
            },
            "teleconsult: configuration error: BANDYER_TIMEOUT_MS must be a whole number; got 'soon'.",
        ),
        (
            {"TELECONSULTATION_SERVICE_CONFIG_PATH": "/nonexistent/config.json"},
            "teleconsult: configuration error: /nonexistent/config.json: cannot read the "
            "configuration: No such file or directory.",
        ),
    ],
)
def test_serve_stops_with_one_line(
    serve_refusal: Refusal, environ: dict[str, str], line: str
) -> None:
    assert serve_refusal(environ) == line + "\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://api.example.com/", "https://api.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9", "http://localhost:9"),
        ("http://[::1]:9", "http://[::1]:9"),
        ("", ""),
    ],
)
def test_a_provider_url_is_https_or_loopback(value: str, expected: str) -> None:
    assert (XSettings.from_environ({"X_URL": value}).url or "") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "http://api.example.com",
            "X_URL must be an https URL (http is accepted for a loopback host only); "
            "got 'http://api.example.com'.",
        ),
        ("ftp://api.example.com", "X_URL must be an https URL; got 'ftp://api.example.com'."),
        ("api.example.com", "X_URL must be an https URL; got 'api.example.com'."),
    ],
)
def test_a_provider_url_in_clear_over_a_network_stops_the_start(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        XSettings.from_environ({"X_URL": value})
    assert str(raised.value) == message


class XSettings(DeclaredSettings):
    """A provider's settings: a URL and a key."""

    url: BaseUrl | None = setting("X_URL", None, "a URL")
    key: str = setting("X_KEY", "", "a secret", secret=True)


class DefaultedSecret(DeclaredSettings):
    key: str = setting("X_KEY", "", "a secret", secret=True)
    url: str = setting("X_URL", "sqlite:///default.db", "a secret", secret=True)


def test_a_secret_is_read_from_the_file_its_file_variable_names(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("  s3cret-from-a-file\n")
    read = XSettings.from_environ({"X_KEY_FILE": str(path)})
    assert read.key == "s3cret-from-a-file"  # blanks and the final newline dropped
    redactor = Redactor(read.secret_values())
    assert redactor.redact("key s3cret-from-a-file sent") == "key [redacted] sent"


def test_a_secret_from_the_environment_is_redacted_and_a_default_is_not() -> None:
    read = DefaultedSecret.from_environ({"X_KEY": "s3cret-from-env"})
    assert read.key == "s3cret-from-env"
    assert read.url == "sqlite:///default.db"
    redactor = Redactor(read.secret_values())
    assert redactor.redact("s3cret-from-env, sqlite:///default.db") == (
        "[redacted], sqlite:///default.db"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "Cannot read X_KEY_FILE '{path}': no such file or directory."),
        ("", "X_KEY_FILE '{path}' is empty."),
        ("\n", "X_KEY_FILE '{path}' is empty."),
        (b"\xff\xfe", "X_KEY_FILE '{path}' is not UTF-8 text."),
        ("k" * (64 * 1024 + 1), "X_KEY_FILE '{path}' is larger than 64 KB: not a secret."),
    ],
)
def test_a_secret_file_that_cannot_be_used_is_named_with_its_path(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError) as raised:
        XSettings.from_environ({"X_KEY_FILE": str(path)})
    assert str(raised.value) == message.format(path=path)


def test_a_secret_file_that_is_a_directory_is_named_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        XSettings.from_environ({"X_KEY_FILE": str(tmp_path)})
    assert str(raised.value) == f"Cannot read X_KEY_FILE '{tmp_path}': is a directory."


def test_a_secret_and_its_file_both_set_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("from-the-file")
    with pytest.raises(ConfigurationError) as raised:
        XSettings.from_environ({"X_KEY": "from-env", "X_KEY_FILE": str(path)})
    assert str(raised.value) == "Set X_KEY or X_KEY_FILE, not both."


def test_the_store_url_and_the_kaleyra_key_may_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("mongodb://teleconsult:pa55word@db.example/t?tls=true\n")
    (tmp_path / "key").write_text("kaleyra-key\n")
    environ = {
        "STORE_URL_FILE": str(tmp_path / "store"),
        "BANDYER_API_SECRET_KEY_FILE": str(tmp_path / "key"),
        "BANDYER_BASE_URL": "https://api.sandbox.eu.bandyer.com",
    }
    settings = Settings.from_environ(environ)
    assert settings.store.url == "mongodb://teleconsult:pa55word@db.example/t?tls=true"
    assert settings.service.video_provider == "bandyer"  # as when the key itself is set
    redactor = planned(settings, load_config(None), environ).redactor
    assert redactor.redact("auth failed for pa55word") == "auth failed for [redacted]"


def test_a_reader_takes_the_declared_settings_for_defaults() -> None:
    class Declared(DeclaredSettings):
        timeout_ms: WholeNumber = setting("X_TIMEOUT_MS", 5000, "a timeout", minimum=1)
        url: str = setting("X_URL", "", "a URL")

    read = Declared.from_environ({})
    assert (read.timeout_ms, read.url) == (5000, "")


@pytest.mark.parametrize("concern", CONCERNS, ids=lambda concern: concern.__name__)
def test_every_error_a_declaration_can_raise_is_one_line_naming_its_variable(
    concern: type[DeclaredSettings],
) -> None:
    """pydantic's error types (parsing, bounds, choices, the checks' value errors) all turn
    into our one line, which names the variable: none leaks pydantic's own wording."""
    refused = 0
    for declared in concern.declared():
        for value in ("x y", "-99999999999", "99999999999999999999", "*", "http://example.org"):
            try:
                concern.from_environ({declared.name: value})
            except ConfigurationError as error:
                refused += 1
                line = str(error)
                assert line.startswith(declared.name + " "), line
                assert "\n" not in line, line
                assert "pydantic" not in line, line
                assert line.endswith("."), line
    assert refused


def test_a_concern_reads_only_the_mapping_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "1234")
    assert Settings.from_environ({}).http.port == 3000


def test_the_secrets_read_are_listed_for_redaction() -> None:
    settings = Settings.from_environ(
        {
            "STORE_URL": "mongodb://teleconsult:pa55word@db.example/t",
            "WEBHOOK_SECRET": "whsec_" + "A" * 32,
        }
    )
    assert settings.secret_values() == (
        "mongodb://teleconsult:pa55word@db.example/t",
        "pa55word",
        "whsec_" + "A" * 32,
    )
    assert Settings.from_environ({}).secret_values() == ()  # a default is no secret
