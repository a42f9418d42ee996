"""The command line: --help lists every setting as the settings page does, check-config checks without
serving, secrets come from files, and a variable that looks like a setting but is none is
named in a warning."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from teleconsult.cli import main
from teleconsult.configuration.catalog import (
    Section,
    Setting,
    help_text,
    markdown_table,
    merged,
    unknown_variables,
)
from teleconsult.configuration.settings import CORE_SETTINGS as SETTINGS
from teleconsult.configuration.settings import declared_settings
from teleconsult.errors import ConfigurationError
from teleconsult.observability import logs
from teleconsult.plugin import DeclaredSettings, VideoProviderPlugin, hookimpl
from teleconsult.plugin import setting as declare
from teleconsult.providers.manager import make_plugin_manager
from tests.helpers import redactor_of

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PAGE = (ROOT / "docs" / "settings.md").read_text()
ROWS = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*) \|$", SETTINGS_PAGE, re.MULTILINE)
"""The settings page's environment variables: name, default, meaning."""
SECTIONS = declared_settings(make_plugin_manager())


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The commands configure the root logger, as they do in their own process."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in logs.CHATTY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, chatty_level in chatty.items():
        logging.getLogger(name).setLevel(chatty_level)


def flat(text: str) -> str:
    return " ".join(text.split())


def run(capsys: pytest.CaptureFixture[str], *argv: str, **environ: str) -> tuple[int, str, str]:
    code = main(list(argv), environ)
    out, err = capsys.readouterr()
    return code, out, err


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"], {})
    assert exited.value.code == 0
    return capsys.readouterr().out


# -- the settings, as --help and the settings page list them ---------------------------------------------


def test_the_settings_page_lists_the_settings_as_declared() -> None:
    """docs/settings.md's table is `teleconsult settings --markdown`: `make settings-page`."""
    table = SETTINGS_PAGE.split("\n| variable | default | meaning |\n", 1)[1].split("\n\n", 1)[0]
    assert ["| variable | default | meaning |", *table.splitlines()] == (
        markdown_table(SECTIONS).splitlines()
    )
    assert len(ROWS) == 100


def test_the_core_and_each_built_in_provider_declare_their_settings() -> None:
    assert [(section.title, len(section.settings)) for section in SECTIONS] == [
        ("teleconsult", 58),
        ("video provider bandyer (VIDEO_PROVIDER=bandyer)", 4),
        ("video provider fake (VIDEO_PROVIDER=fake)", 2),
        ("video provider jitsi (VIDEO_PROVIDER=jitsi)", 9),
        ("video provider livekit (VIDEO_PROVIDER=livekit)", 9),
        ("video provider webrtc (VIDEO_PROVIDER=webrtc)", 6),
        ("identity provider auth0 (IDENTITY_PROVIDER=auth0)", 12),
    ]


@pytest.mark.parametrize("command", [(), ("serve",)], ids=["teleconsult", "serve"])
def test_help_lists_every_settings_page_row(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    text = flat(help_of(capsys, *command))
    for name, default, meaning in ROWS:
        shown = f"{name}={default.strip('`')}" if default != "(unset)" else f"{name} (unset)"
        assert flat(f"{shown} {meaning.replace('`', '')}") in text, name


def test_help_reads_as_a_list(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(capsys, "serve")
    assert "\nsettings (environment variables; an unset or blank one takes its default):\n" in text
    assert "\n  HTTP_PORT=3000\n      port to listen on\n" in text
    assert (
        "\nvideo provider bandyer (VIDEO_PROVIDER=bandyer):\n  BANDYER_BASE_URL (unset)\n" in text
    )
    lines = text.split("settings (", 1)[1].splitlines()
    assert [line for line in lines if len(line) > 79 and len(line.split()) > 1] == []  # wrapped


def test_settings_prints_the_list_and_the_page_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "settings") == (0, help_text(SECTIONS), "")
    code, out, err = run(capsys, "settings", "--markdown")
    assert (code, err) == (0, "")
    assert out == markdown_table(SECTIONS)
    assert out in SETTINGS_PAGE


def test_a_provider_plugin_declares_its_settings_on_its_registration() -> None:
    rooms_url = Setting("ECHO_ROOMS_URL", "https://video.example/rooms", "where links point")
    key = Setting("ECHO_KEY", "", "`echo` provider: its key", secret=True)

    class EchoSettings(DeclaredSettings):
        url: str = declare(rooms_url.name, rooms_url.default, rooms_url.meaning)
        secret: str = declare(key.name, key.default, key.meaning, secret=True)

    class Echo:
        @hookimpl
        def register_video_providers(self) -> list[VideoProviderPlugin[EchoSettings]]:
            return [
                VideoProviderPlugin(
                    name="echo",
                    create=lambda context: None,  # type: ignore[arg-type, return-value]
                    settings=EchoSettings,
                )
            ]

    sections = declared_settings(make_plugin_manager([Echo()]))
    assert Section("video provider echo (VIDEO_PROVIDER=echo)", (rooms_url, key)) in sections
    assert "| `ECHO_ROOMS_URL` | `https://video.example/rooms` | where links point |\n" in (
        markdown_table(sections)
    )
    assert "| `ECHO_KEY` | (unset) | `echo` provider: its key; or `ECHO_KEY_FILE`, the path of a " \
        "file that holds it |\n" in markdown_table(sections)  # fmt: skip
    assert unknown_variables({"ECHO_KEY_FILE": "/k", "ECHO_ROOM_URL": "x"}, sections) == [
        ("ECHO_ROOM_URL", "ECHO_ROOMS_URL")
    ]


def test_a_setting_declared_twice_alike_is_listed_once() -> None:
    shared = Setting("JAAS_APP_ID", "", "the app")
    assert merged(
        [Section("teleconsult", SETTINGS), Section("a", (shared,)), Section("b", (shared,))]
    ) == [Section("teleconsult", SETTINGS), Section("a", (shared,))]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            Setting("HTTP_PORT", "8080", "the port"),
            "HTTP_PORT is declared by both teleconsult and video provider x (VIDEO_PROVIDER=x).",
        ),
        (
            Setting("STORE_URL_FILE", "", "a file"),
            "STORE_URL_FILE is declared by both teleconsult and video provider x (VIDEO_PROVIDER=x).",
        ),
    ],
)
def test_a_setting_declared_twice_differently_stops_the_start(
    capsys: pytest.CaptureFixture[str], setting: Setting, message: str
) -> None:
    class ClashSettings(DeclaredSettings):
        value: str = declare(setting.name, setting.default, setting.meaning)

    class Clash:
        @hookimpl
        def register_video_providers(self) -> list[VideoProviderPlugin[ClashSettings]]:
            return [
                VideoProviderPlugin(
                    name="x",
                    create=lambda context: None,  # type: ignore[arg-type, return-value]
                    settings=ClashSettings,
                )
            ]

    with pytest.raises(ConfigurationError) as raised:
        declared_settings(make_plugin_manager([Clash()]))
    assert str(raised.value) == message


# -- check-config -----------------------------------------------------------------------------------


def test_check_config_says_ok_and_serves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = tmp_path / "never-made.db"
    assert run(capsys, "check-config", STORE_URL=f"sqlite:///{store}") == (
        0,
        "teleconsult: configuration OK (store sqlite, video webrtc, identity static, service "
        "configuration built-in)\n",
        "",
    )
    assert not store.exists()


def test_check_config_checks_the_configuration_file_and_the_providers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "service-config.json"
    config.write_text(
        json.dumps({"privileges": {"basic": {"groups": ["p"]}, "plus": {"groups": ["d"]}}})
    )
    key = tmp_path / "key"
    key.write_text("k" * 32 + "\n")
    assert run(
        capsys,
        "check-config",
        STORE_URL="mongodb://u:p@db.example/teleconsult",
        TELECONSULTATION_SERVICE_CONFIG_PATH=str(config),
        BANDYER_BASE_URL="https://api.sandbox.eu.bandyer.com",
        BANDYER_API_SECRET_KEY_FILE=str(key),
        AUTH0_DOMAIN="t.eu.auth0.com",
        AUTH0_CLIENT_ID="i",
        AUTH0_CLIENT_SECRET="s",
    ) == (
        0,
        "teleconsult: configuration OK (store mongodb, video bandyer, identity auth0, service "
        f"configuration {config})\n",
        "",
    )


CONFIGURATION_ERRORS = [
    ({"LIVE_TELECONSULTATION": "1"}, "LIVE_TELECONSULTATION must be true or false; got '1'."),
    (
        {"CORS_ALLOWED_ORIGINS": "https://app.example.org/"},
        "CORS_ALLOWED_ORIGINS must list origins without a path or a trailing slash; got 'https://app.example.org/'.",
    ),
    (
        {"VIDEO_PROVIDER": "zoom"},
        "VIDEO_PROVIDER='zoom' names no installed video provider (installed: bandyer, fake, jitsi, livekit, webrtc).",
    ),
    (
        {"STORE_URL": "postgres://db/teleconsult"},
        "STORE_URL has a scheme no store handles; use sqlite:///<path>, mongodb://... or "
        "mongodb+srv://...",
    ),
    (
        {"TELECONSULTATION_SERVICE_CONFIG_PATH": "/nonexistent/config.json"},
        "/nonexistent/config.json: cannot read the configuration: No such file or directory.",
    ),
    (
        {"VIDEO_PROVIDER": "bandyer", "BANDYER_API_SECRET_KEY": "k"},
        "VIDEO_PROVIDER=bandyer needs BANDYER_BASE_URL, the Kaleyra v2 API base URL (for example "
        "https://api.sandbox.eu.bandyer.com).",
    ),
    (
        {"VIDEO_PROVIDER": "bandyer", "BANDYER_BASE_URL": "https://api.eu.bandyer.com"},
        "VIDEO_PROVIDER=bandyer needs BANDYER_API_SECRET_KEY (or BANDYER_API_SECRET_KEY_FILE), "
        "the Kaleyra API key.",
    ),
    (
        {"BANDYER_API_SECRET_KEY": "k", "BANDYER_BASE_URL": "http://api.eu.bandyer.com"},
        "BANDYER_BASE_URL must be an https URL (http is accepted for a loopback host only); got "
        "'http://api.eu.bandyer.com'.",
    ),
    (
        {"BANDYER_API_SECRET_KEY": "k", "BANDYER_BASE_URL": "https://x", "BANDYER_TIMEOUT_MS": "soon"},
        "BANDYER_TIMEOUT_MS must be a whole number; got 'soon'.",
    ),
    (
        {"VIDEO_PROVIDER": "jitsi"},
        "VIDEO_PROVIDER=jitsi needs JITSI_DOMAIN, the host of the Jitsi Meet deployment (for "
        "example meet.example.org, or 8x8.vc for 8x8 JaaS).",
    ),
    (
        {"VIDEO_PROVIDER": "jitsi", "JITSI_DOMAIN": "meet.example.org", "JITSI_APP_ID": "t", "JITSI_APP_SECRET": "tiny-key-0001"},
        "JITSI_APP_SECRET must be at least 32 characters: a shorter HS256 secret could be guessed "
        "from any token handed out.",
    ),
    (
        {"VIDEO_PROVIDER": "livekit"},
        "VIDEO_PROVIDER=livekit needs LIVEKIT_URL, the LiveKit server's https URL (for example "
        "https://lk.example.org).",
    ),
    (
        {"VIDEO_PROVIDER": "livekit", "LIVEKIT_URL": "https://lk.example.org", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s" * 32, "LIVEKIT_MAX_PARTICIPANTS": "1"},
        "LIVEKIT_MAX_PARTICIPANTS must be at least 2 and at most 1000; got 1.",
    ),
    (
        {"VIDEO_PROVIDER": "fake", "FAKE_VIDEO_LATENCY_MS": "-1"},
        "FAKE_VIDEO_LATENCY_MS must be at least 0 and at most 600000; got -1.",
    ),
    (
        {"IDENTITY_PROVIDER": "auth0"},
        "IDENTITY_PROVIDER=auth0 needs AUTH_SERVICE (the auth0-client host) or AUTH0_DOMAIN with "
        "AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET.",
    ),
    (
        {"AUTH0_DOMAIN": "t.eu.auth0.com", "AUTH0_CLIENT_ID": "i"},
        "AUTH0_DOMAIN needs AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (a machine-to-machine "
        "application allowed to read users).",
    ),
    (
        {"AUTH0_DOMAIN": "t", "AUTH0_CLIENT_ID": "i", "AUTH0_CLIENT_SECRET": "s", "AUTH0_GROUPS_SOURCE": "ldap"},
        "AUTH0_GROUPS_SOURCE must be app_metadata or roles; got 'ldap'.",
    ),
    (
        {"AUTH_SERVICE": "a", "AUTH0_CACHE_TTL_MS": "soon"},
        "AUTH0_CACHE_TTL_MS must be a whole number; got 'soon'.",
    ),
    (
        {"AUTH_SERVICE": "a", "AUTH0_TIMEOUT_MS": "-5"},
        "AUTH0_TIMEOUT_MS must be at least 0; got -5.",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("environ", "message"), CONFIGURATION_ERRORS)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_check_config_stops_where_serve_stops_with_the_same_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
    environ: dict[str, str],
    message: str,
) -> None:
    """serve stops before it listens (on a provider's own settings, once the store is open);
    check-config stops with the same line and opens nothing."""
    environ = {"STORE_URL": f"sqlite:///{tmp_path / 'never-opened.db'}", **environ}
    code, out, err = run(capsys, command, **environ)
    assert (code, err) == (2, f"teleconsult: configuration error: {message}\n")
    assert "configuration OK" not in out
    if command == "check-config":
        assert not (tmp_path / "never-opened.db").exists()


# -- secrets from files ---------------------------------------------------------------------------


def test_the_secret_settings() -> None:
    assert sorted(s.name for x in SECTIONS for s in x.settings if s.secret) == [
        "AUTH0_CLIENT_SECRET",
        "BANDYER_API_SECRET_KEY",
        "JITSI_APP_SECRET",
        "JITSI_PRIVATE_KEY",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "STORE_URL",
        "WEBHOOK_SECRET",
        "WEBRTC_LINK_SECRET",
        "WEBRTC_TURN_SECRET",
    ]


JITSI = {"VIDEO_PROVIDER": "jitsi", "JITSI_DOMAIN": "meet.example.org", "JITSI_APP_ID": "t"}
LIVEKIT = {"VIDEO_PROVIDER": "livekit", "LIVEKIT_URL": "https://lk.example.org"}


@pytest.mark.parametrize(
    ("environ", "secret", "value"),
    [
        ({}, "STORE_URL", "mongodb://u:file-password@db.example/t"),
        ({"VIDEO_PROVIDER": "bandyer", "BANDYER_BASE_URL": "https://x"}, "BANDYER_API_SECRET_KEY", "file-secret-1"),
        ({**JITSI}, "JITSI_APP_SECRET", "jitsi-app-secret-from-a-file-0123456789"),
        ({**LIVEKIT, "LIVEKIT_API_SECRET": "s" * 32}, "LIVEKIT_API_KEY", "livekit-key-from-a-file"),
        ({**LIVEKIT, "LIVEKIT_API_KEY": "k"}, "LIVEKIT_API_SECRET", "livekit-secret-from-a-file-0123456789"),
        ({"AUTH0_DOMAIN": "t", "AUTH0_CLIENT_ID": "i"}, "AUTH0_CLIENT_SECRET", "file-secret-2"),
        ({"VIDEO_PROVIDER": "webrtc"}, "WEBRTC_LINK_SECRET", "webrtc-link-secret-from-a-file-0123456789"),
        ({"VIDEO_PROVIDER": "webrtc", "WEBRTC_TURN_URLS": "turn:turn.example.org"}, "WEBRTC_TURN_SECRET", "turn-secret-from-a-file"),
        ({"WEBHOOK_URL": "https://hooks.example.org/in"}, "WEBHOOK_SECRET", "whsec_" + "QUJD" * 8),
    ],
)  # fmt: skip
def test_each_secret_is_read_from_its_file_and_never_shown(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    environ: dict[str, str],
    secret: str,
    value: str,
) -> None:
    path = tmp_path / "secret"
    path.write_text(value + "\n")
    code, out, err = run(capsys, "check-config", **environ, **{f"{secret}_FILE": str(path)})
    assert (code, err) == (0, "")
    assert out.startswith("teleconsult: configuration OK")
    redactor = redactor_of(**environ, **{f"{secret}_FILE": str(path)})  # the app's
    assert redactor.redact(f"the value is {value}") == "the value is [redacted]"

    path.unlink()
    code, out, err = run(capsys, "check-config", **environ, **{f"{secret}_FILE": str(path)})
    assert (code, out) == (2, "")
    assert err == (
        f"teleconsult: configuration error: Cannot read {secret}_FILE '{path}': no such file or "
        "directory.\n"
    )

    path.write_text(value)
    code, out, err = run(
        capsys, "check-config", **environ, **{f"{secret}_FILE": str(path), secret: value}
    )
    assert (code, out) == (2, "")
    assert err == f"teleconsult: configuration error: Set {secret} or {secret}_FILE, not both.\n"


# -- variables that look like settings ------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("IMMUTABLE_PERIOD", "IMMUTABLE_PERIOD_MS"),
        ("HTTP_POR", "HTTP_PORT"),
        ("BANDYER_API_KEY", "BANDYER_API_SECRET_KEY"),
        ("BANDYER_API_SECRET_KEY_FIL", "BANDYER_API_SECRET_KEY_FILE"),
        ("JWT_SECRET", "JWT_ISSUER"),
        ("LOGLEVEL", "LOG_LEVEL"),
        ("SQLLITE_SYNCHRONOUS", "SQLITE_SYNCHRONOUS"),
        ("AUTH0_CLIENTID", "AUTH0_CLIENT_ID"),
        ("TELECONSULTATION_CONFIG_PATH", "TELECONSULTATION_SERVICE_CONFIG_PATH"),
        ("STORE_URI", "STORE_URL"),
    ],
)
def test_a_variable_that_looks_like_a_setting_names_the_closest(
    variable: str, closest: str
) -> None:
    assert unknown_variables({variable: "x"}, SECTIONS) == [(variable, closest)]


def test_other_programs_variables_and_known_ones_are_not_warned_about() -> None:
    environ = dict.fromkeys(
        [
            # A container's own, and Kubernetes' for each Service of the namespace.
            "PATH", "HOME", "HOSTNAME", "LANG", "TERM", "PYTHON_VERSION", "PYTHON_SHA256",
            "GPG_KEY", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE", "TZ", "PWD", "SHLVL", "USER",
            "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS",
            "KUBERNETES_PORT", "KUBERNETES_PORT_443_TCP", "KUBERNETES_PORT_443_TCP_ADDR",
            "KUBERNETES_PORT_443_TCP_PORT", "KUBERNETES_PORT_443_TCP_PROTO",
            "MONGODB_SERVICE_HOST", "MONGODB_PORT", "MONGODB_PORT_27017_TCP_ADDR",
            "TELECONSULT_SERVICE_HOST", "TELECONSULT_PORT_3000_TCP",
            "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
            # Ours: every declared name, a secret's file, the original docs' other spelling.
            *(s.name for x in SECTIONS for s in x.settings),
            "STORE_URL_FILE", "BANDYER_API_SECRET_KEY_FILE", "AUTH0_CLIENT_SECRET_FILE",
            "USER_MAP_ID_CRUD_NAME",
            # The test suite's and the benchmarks'.
            "TEST_STORE", "TEST_MONGODB_URL", "BENCH_POLL_SECONDS", "SCHEMATHESIS_EXAMPLES",
        ],
        "x",
    )  # fmt: skip
    assert unknown_variables(environ, SECTIONS) == []


WARNINGS = [
    {
        "level": 40,
        "logger": "teleconsult.cli",
        "variable": "HTTP_POR",
        "closest": "HTTP_PORT",
        "msg": "HTTP_POR is not a teleconsult setting and is ignored; did you mean HTTP_PORT?",
    },
    {
        "level": 40,
        "logger": "teleconsult.cli",
        "variable": "IMMUTABLE_PERIOD",
        "closest": "IMMUTABLE_PERIOD_MS",
        "msg": "IMMUTABLE_PERIOD is not a teleconsult setting and is ignored; did you mean "
        "IMMUTABLE_PERIOD_MS?",
    },
]


def logged(text: str) -> list[dict[str, object]]:
    """The JSON lines, without `time`, `pid` and `hostname` once checked (pino's shape)."""
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert isinstance(line.pop("time"), int)
        assert (line.pop("pid"), line.pop("hostname")) == (os.getpid(), socket.gethostname())
    return lines


def test_check_config_prints_the_warnings_then_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "check-config", IMMUTABLE_PERIOD="ten-minutes", HTTP_POR="port-eighty", PATH="/bin"
    )
    assert (code, out) == (0, "teleconsult: configuration OK (store sqlite, video webrtc, "
                                "identity static, service configuration built-in)\n")  # fmt: skip
    assert logged(err) == WARNINGS
    assert "ten-minutes" not in err
    assert "port-eighty" not in err


def test_serve_logs_the_warnings_before_it_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys,
        "serve",
        IMMUTABLE_PERIOD="ten-minutes",
        HTTP_POR="port-eighty",
        VIDEO_PROVIDER="zoom",  # stops it before it listens
        STORE_URL=f"sqlite:///{tmp_path / 'never-opened.db'}",
    )
    assert (code, err) == (
        2,
        "teleconsult: configuration error: VIDEO_PROVIDER='zoom' names no installed video "
        "provider (installed: bandyer, fake, jitsi, livekit, webrtc).\n",
    )
    assert logged(out) == WARNINGS
    assert "ten-minutes" not in out
