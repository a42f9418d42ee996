"""The commands: `teleconsult serve`, `check-config`, `settings`, `openapi`, `provider-check`,
`migrate`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiohttp import web

from teleconsult import __version__
from teleconsult.api.document import started_document
from teleconsult.api.hardening import HardenedRunner
from teleconsult.app import create_app
from teleconsult.composition import planned
from teleconsult.configuration.catalog import Section, help_text, markdown_table, unknown_variables
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings, declared_settings
from teleconsult.errors import ConfigurationError, Unavailable
from teleconsult.migration import command as migration
from teleconsult.observability.logs import configure_logging
from teleconsult.provider_check import check, report
from teleconsult.providers.manager import make_plugin_manager
from teleconsult.serving import serve_until_stopped

log = logging.getLogger(__name__)


def warn_of_unknown_variables(environ: Mapping[str, str], sections: Sequence[Section]) -> None:
    """One warning line for each variable that looks like a setting but is none (a typo),
    naming it and the closest setting: names only, never values."""
    for variable, closest in unknown_variables(environ, sections):
        log.warning(
            "%s is not a teleconsult setting and is ignored; did you mean %s?",
            variable,
            closest,
            extra={"fields": {"variable": variable, "closest": closest}},
        )


async def _freeze_what_start_up_made(app: web.Application) -> None:
    """Move what start-up allocated (the app, plugins, schemas, the OpenAPI document: most of
    the process's objects, living as long as it does) out of the garbage collector's sight.
    The oldest generation's collections, which run now and then under load, walk only what
    was made since: a poll's p99 went from about 85-90 ms to 40-50 ms under 100 connections
    (docs/performance.md). In `serve` only: tests make many apps in one process."""
    gc.collect()
    gc.freeze()


def serve(environ: Mapping[str, str], sections: Sequence[Section]) -> None:
    settings = Settings.from_environ(environ)
    config = load_config(settings.service.config_path)
    configure_logging(settings.service.log_level)
    warn_of_unknown_variables(environ, sections)
    app = create_app(settings, config, environ=environ)
    parts = {
        "version": __version__,
        "store": settings.store.url.split(":", 1)[0],
        "video": settings.service.video_provider,
        "identity": settings.service.identity_provider,
    }

    def started(where: str) -> None:
        """The start line, once the store is open and the port bound: a JSON line like every
        other, and a line for a person when one watches the terminal. `where` is the address
        bound (the real port, when HTTP_PORT is 0)."""
        log.info("listening on %s", where, extra={"fields": parts})
        if sys.stderr.isatty():
            print(
                f"teleconsult {__version__} listening on {where} (store {parts['store']}, "
                f"video {parts['video']}, identity {parts['identity']})",
                file=sys.stderr,
                flush=True,
            )

    async def stopping(app: web.Application) -> None:
        log.info(
            "shutting down: no new connections; requests in flight have %g s",
            settings.http.shutdown_grace_ms / 1000,
            extra={"fields": {"graceMs": settings.http.shutdown_grace_ms}},
        )

    app.on_startup.append(_freeze_what_start_up_made)  # last: once the store and providers opened
    app.on_shutdown.insert(0, stopping)  # first: before the providers close their sockets
    runner = HardenedRunner(
        app,
        access_log=None,
        # On SIGTERM: stop accepting, let in-flight requests finish within the grace time,
        # then close the store and HTTP sessions (the app's cleanup contexts).
        shutdown_timeout=settings.http.shutdown_grace_ms / 1000,
        # The one timer aiohttp keeps from a connection's start (or its last answer) until a
        # request's headers are in: it bounds slow headers, and idle keep-alive connections.
        keepalive_timeout=settings.http.read_timeout_ms / 1000,
    )
    asyncio.run(serve_until_stopped(runner, settings.http.host, settings.http.port, started))
    log.info("stopped")


def check_config(environ: Mapping[str, str], sections: Sequence[Section]) -> None:
    """What `serve` checks before it opens anything (the same `composition.planned`), and
    the chosen providers' own settings (without I/O); one line on stdout when all is well."""
    settings = Settings.from_environ(environ)
    config = load_config(settings.service.config_path)
    configure_logging(settings.service.log_level, sys.stderr)  # stdout is the verdict
    warn_of_unknown_variables(environ, sections)
    planned(settings, config, environ)  # the chosen providers' own settings included
    print(
        f"teleconsult: configuration OK (store {settings.store.url.split(':', 1)[0]}, "
        f"video {settings.service.video_provider}, identity {settings.service.identity_provider}, "
        f"service configuration {settings.service.config_path or 'built-in'})"
    )


def write_openapi(output: Path) -> None:
    """The document of the default configuration (the checked-in one). The served document
    follows the running configuration, partly from the providers opened at startup: so the
    app starts here too, on a temporary store, without listening."""
    with tempfile.TemporaryDirectory() as folder:
        # Neither the store nor the reconciler shows in the document.
        environ = {"STORE_URL": f"sqlite:///{Path(folder) / 'openapi.db'}"}
        environ["RECONCILE_INTERVAL_MS"] = "0"
        app = create_app(Settings.from_environ(environ), load_config(None), environ=environ)
        document = asyncio.run(started_document(app))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def provider_check(environ: Mapping[str, str], user_ids: Sequence[str], as_json: bool) -> int:
    """Exercise the configured providers; 1 when any step failed."""
    settings = Settings.from_environ(environ)
    config = load_config(settings.service.config_path)
    configure_logging(settings.service.log_level, sys.stderr)  # stdout is the report
    video, identity, steps = asyncio.run(check(settings, config, environ, user_ids))
    report(video, identity, steps, as_json=as_json)
    return 1 if any(step.outcome == "fail" for step in steps) else 0


def migrate(environ: Mapping[str, str], arguments: argparse.Namespace) -> int:
    """Take over the original's MongoDB data (`teleconsult.migration`); 1 when any document
    could not be migrated."""
    settings = Settings.from_environ(environ)
    config = load_config(settings.service.config_path)
    configure_logging(settings.service.log_level, sys.stderr)  # stdout is the report
    return migration.migrate(settings, config, environ, arguments)


def command_line(settings_help: str) -> argparse.ArgumentParser:
    """The command line; `teleconsult --help` and `teleconsult serve --help` end with the
    settings (`settings_help`)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="teleconsult", description=__doc__, epilog=settings_help, formatter_class=raw
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        help="serve the HTTP API (configured by environment variables)",
        description="Serve the HTTP API, configured by the environment variables below.",
        epilog=settings_help,
        formatter_class=raw,
    )
    commands.add_parser(
        "check-config",
        help="check the environment and the configuration file, then exit",
        description=(
            "Check the settings, the configuration file and the chosen providers' own settings "
            "as serve does, without opening the store or calling a provider; print one line "
            "and exit (2 when something is wrong)."
        ),
    )
    listing = commands.add_parser(
        "settings", help="list the settings (environment variables) with their defaults"
    )
    listing.add_argument(
        "--markdown", action="store_true", help="as the settings page's table (docs/settings.md)"
    )
    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", type=Path, default=Path("openapi/openapi.json"))
    checker = commands.add_parser(
        "provider-check",
        help="check that the configured providers' accounts answer as teleconsult expects",
        description=(
            "Create two throwaway users and a room on the configured video provider, use every "
            "capability it offers, delete the room; look up USER_IDs with the identity provider. "
            "Prints each step's outcome and the answer's shape (never its values)."
        ),
    )
    checker.add_argument("user_ids", nargs="*", metavar="USER_ID", help="ids to look up")
    checker.add_argument("--json", action="store_true", help="one JSON document, for a pipeline")
    migration.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        sections = declared_settings(make_plugin_manager())
        arguments = command_line(help_text(sections)).parse_args(argv)
        if arguments.command == "serve":
            serve(environ, sections)
        elif arguments.command == "check-config":
            check_config(environ, sections)
        elif arguments.command == "settings":
            print(markdown_table(sections) if arguments.markdown else help_text(sections), end="")
        elif arguments.command == "openapi":
            write_openapi(arguments.output)
        elif arguments.command == "provider-check":
            return provider_check(environ, arguments.user_ids, arguments.json)
        elif arguments.command == "migrate":
            return migrate(environ, arguments)
    except ConfigurationError as error:
        print(f"teleconsult: configuration error: {error}", file=sys.stderr)
        return 2
    except Unavailable as error:
        print(f"teleconsult: cannot start: {error.message}", file=sys.stderr)
        return 1
    except OSError as error:  # the address: taken, not ours, not resolvable
        reason = error.strerror or str(error)
        print(f"teleconsult: cannot listen on HTTP_HOST:HTTP_PORT: {reason}.", file=sys.stderr)
        return 1
    return 0
