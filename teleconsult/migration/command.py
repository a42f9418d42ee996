"""`teleconsult migrate`: its options, its run against STORE_URL's MongoDB, and its report.

The report names outcomes, counts and document ids only: never a person's name, id or link.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, TextIO

from pymongo.errors import PyMongoError

from teleconsult.composition import open_providers, planned
from teleconsult.configuration.service_config import ServiceConfig
from teleconsult.configuration.settings import Settings
from teleconsult.errors import ConfigurationError
from teleconsult.migration.rules import PROVIDER
from teleconsult.migration.runner import (
    Migrator,
    Options,
    Progress,
    Source,
    Summary,
    Tally,
)
from teleconsult.providers.protocols import Caller, Identity, ParticipantEntry
from teleconsult.store.mongo import SCHEMES, database_name, open_mongo
from teleconsult.store.mongo.connection import client_for, short_reason

NOT_MONGO = (
    "teleconsult migrate applies to the MongoDB store, where the original service kept its "
    "data: set STORE_URL to the original's MongoDB (mongodb://...). STORE_URL names SQLite, "
    "which holds no document of the original: nothing to migrate."
)
DESCRIPTION = (
    "Bring the original service's MongoDB documents (the collections TELECONSULTATIONS_CRUD_NAME "
    "and USER_ID_MAP_CRUD_NAME name) to teleconsult's form, in place: same _id, the original's "
    "fields kept beside ours. Without --apply it is a dry run that writes nothing and reports "
    "what --apply would do; run it first. Safe to run again or after an interruption: "
    "converted documents are skipped, documents the original changed since are converted "
    "again. Exit status: 0 when every document is (or would be) migrated, 1 when any cannot "
    "be, 2 on a configuration error. docs/operations.md, 'Coming from the original service', "
    "is the runbook."
)


def add_parser(commands: Any) -> None:
    """The `migrate` subcommand and its options (`teleconsult migrate --help`)."""
    parser = commands.add_parser(
        "migrate",
        help="take over the original service's MongoDB data (a dry run unless --apply)",
        description=DESCRIPTION,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="report what would be migrated and why anything cannot be; write nothing "
        "(the default: nothing is written without --apply)",
    )
    mode.add_argument(
        "--apply", action="store_true", help="convert the documents (after a dry run)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=100,
        metavar="N",
        help="documents read per query (default 100)",
    )
    parser.add_argument(
        "--limit",
        type=_positive,
        default=None,
        metavar="N",
        help="stop after N documents, user map and teleconsultations together (a trial run; "
        "run again without it to go on)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON document on stdout"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def options_of(arguments: argparse.Namespace) -> Options:
    return Options(apply=arguments.apply, batch_size=arguments.batch_size, limit=arguments.limit)


def migrate(
    settings: Settings,
    config: ServiceConfig,
    environ: Mapping[str, str],
    arguments: argparse.Namespace,
) -> int:
    """Run the command; its exit status."""
    if not settings.store.url.startswith(SCHEMES):
        print(f"teleconsult: {NOT_MONGO}", file=sys.stderr)
        return 2
    options = options_of(arguments)
    progress = BarOnTerminal(sys.stderr) if sys.stderr.isatty() and not arguments.json else None
    try:
        summary = asyncio.run(_migrate_url(settings, config, environ, options, progress))
    except PyMongoError as error:
        # Each document is converted whole or not at all: running again goes on.
        print(
            f"teleconsult: migrate stopped, MongoDB failed: {short_reason(error)}. Documents "
            "converted so far stay converted; run the command again to go on.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "\nteleconsult: migrate interrupted. Documents converted so far stay converted; "
            "run the command again to go on.",
            file=sys.stderr,
        )
        return 130
    print_summary(summary, arguments.json, sys.stdout)
    return 1 if summary.failed else 0


async def _migrate_url(
    settings: Settings,
    config: ServiceConfig,
    environ: Mapping[str, str],
    options: Options,
    progress: Progress | None,
) -> Summary:
    client = client_for(settings.store.url, settings.store.mongodb_timeout_ms)
    try:
        database = client[database_name(settings.store.url, settings.store.mongodb_database)]
        prepared = await prepared_migrator(database, settings, config, environ, options, progress)
        async with prepared as migrator:
            return await migrator.run()
    finally:
        await client.close()


class PreparedMigrator:
    """A migrator with its identity provider open, closed on leaving."""

    def __init__(self, migrator: Migrator, stack: AsyncExitStack) -> None:
        self.migrator = migrator
        self._stack = stack

    async def __aenter__(self) -> Migrator:
        return self.migrator

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()


async def prepared_migrator(
    database: Any,
    settings: Settings,
    config: ServiceConfig,
    environ: Mapping[str, str],
    options: Options,
    progress: Progress | None = None,
) -> PreparedMigrator:
    """The migrator the settings describe; its identity provider is the configured one, so
    in auth0 mode groups and names come from Auth0, as they would for a request."""
    plan = planned(settings, config, environ)
    if plan.plugins.video.name != PROVIDER:
        raise ConfigurationError(
            f"teleconsult migrate takes over the original's Kaleyra rooms and users: it needs "
            f"VIDEO_PROVIDER={PROVIDER} (with BANDYER_BASE_URL and BANDYER_API_SECRET_KEY), "
            f"not {plan.plugins.video.name}."
        )
    stack = AsyncExitStack()
    try:
        store = await open_mongo(
            database,
            settings.store.teleconsultations_collection,
            settings.store.user_map_collection,
            indexes=False,  # the identity provider's, which needs none
        )
        stack.push_async_callback(store.health.close)
        _, identity = await open_providers(stack, plan, lambda: datetime.now(UTC), store)
    except BaseException:
        await stack.aclose()
        raise

    async def identify(entries: Sequence[ParticipantEntry]) -> list[Identity]:
        return await identity.identify(entries, Caller(None))

    source = Source(
        database=database,
        teleconsultations=settings.store.teleconsultations_collection,
        users=settings.store.user_map_collection,
        privileges=config.privileges,
        policy=settings.rooms.policy,
    )
    migrator = Migrator(
        source,
        identify,
        identity.resolves_bare_ids,
        options,
        clock=lambda: datetime.now(UTC),
        progress=progress,
    )
    return PreparedMigrator(migrator, stack)


class BarOnTerminal:
    """A progress bar on a terminal: the collection, done / total, the outcomes, the rate."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def advance(self, collection: str, done: int, total: int, tally: Tally) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        rate = done / max(time.monotonic() - self.started, 1e-3)
        line = (
            f"\r{collection:<20} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} "
            f"{_short(tally)} {rate:.0f}/s"
        )
        end = "\n" if done >= total else ""
        print(line, end=end, file=self.stream, flush=True)


def _short(tally: Tally) -> str:
    return ", ".join(f"{outcome} {n}" for outcome, n in sorted(tally.counts.items()))


def print_summary(summary: Summary, as_json: bool, stream: TextIO) -> None:
    if as_json:
        print(json.dumps(summary.as_json(), sort_keys=True), file=stream)
        return
    print(summary_text(summary), file=stream)


def summary_text(summary: Summary) -> str:
    lines = [
        "teleconsult migrate: "
        + ("applied" if summary.apply else "dry run, nothing written (--apply to migrate)")
    ]
    for name, tally in (
        ("user map", summary.users),
        ("teleconsultations", summary.teleconsultations),
    ):
        lines.append(f"{name}: {sum(tally.counts.values())} document(s)")
        for outcome, count in sorted(tally.counts.items()):
            samples = ", ".join(tally.samples.get(outcome, []))
            lines.append(f"  {outcome}: {count} (e.g. {samples})")
    if not summary.complete:
        lines.append("stopped by --limit: run again to go on")
    if summary.index_error:
        lines.append(f"indexes not created: {summary.index_error}")
    lines.append(f"teleconsultations not in teleconsult's form: {summary.unmigrated}")
    return "\n".join(lines)
