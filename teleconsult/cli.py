"""The commands: `teleconsult serve`, `teleconsult openapi`, `teleconsult provider-check`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiohttp import web

from teleconsult import __version__
from teleconsult.api import openapi_document
from teleconsult.app import create_app
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.errors import ConfigurationError, Unavailable
from teleconsult.observability.logs import configure_logging
from teleconsult.provider_check import check, report


def serve(environ: Mapping[str, str]) -> None:
    settings = Settings.from_environ(environ)
    config = load_config(settings.service_config_path)
    configure_logging(settings.log_level)
    app = create_app(settings, config, environ=environ)
    started = (
        f"teleconsult {__version__} listening on http://{settings.http_host}:{settings.http_port} "
        f"(store {settings.store_url.split(':', 1)[0]}, video {settings.video_provider}, "
        f"identity {settings.identity_provider})"
    )
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        access_log=None,
        # On SIGTERM: stop accepting, let in-flight requests finish within the grace time,
        # then close the store and HTTP sessions (the app's cleanup contexts).
        shutdown_timeout=settings.shutdown_grace_ms / 1000,
        # The one timer aiohttp keeps from a connection's start (or its last answer) until a
        # request's headers are in: it bounds slow headers, and idle keep-alive connections.
        keepalive_timeout=settings.http_read_timeout_ms / 1000,
        # Called once the store is open and the port is bound: the line a person waits for.
        print=lambda _: print(started, file=sys.stderr, flush=True),
    )


def write_openapi(output: Path) -> None:
    """The document depends on the code only, so it is built from the default settings."""
    settings = Settings.from_environ({})
    app = create_app(settings, load_config(None), environ={})
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(openapi_document(app), indent=2, sort_keys=True) + "\n")


def provider_check(environ: Mapping[str, str], user_ids: Sequence[str], as_json: bool) -> int:
    """Exercise the configured providers; 1 when any step failed."""
    settings = Settings.from_environ(environ)
    config = load_config(settings.service_config_path)
    configure_logging(settings.log_level, sys.stderr)  # stdout is the report
    video, identity, steps = asyncio.run(check(settings, config, environ, user_ids))
    report(video, identity, steps, as_json=as_json)
    return 1 if any(step.outcome == "fail" for step in steps) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="teleconsult", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the HTTP API (configured by environment variables)")
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
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "serve":
            serve(os.environ)
        elif arguments.command == "openapi":
            write_openapi(arguments.output)
        elif arguments.command == "provider-check":
            return provider_check(os.environ, arguments.user_ids, arguments.json)
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
