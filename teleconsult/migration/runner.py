"""`teleconsult migrate`'s work on the database: the user map, then the teleconsultations, in
bounded batches by `_id`, each document converted by a compare-and-set.

A document is written only if every field conversion read is still as read: a write by the
original in between (a replica still running) makes the update match nothing, and the
document is read again and converted again (`ATTEMPTS` times, then reported as
`changed_during_run`). Each document is converted on its own, so a run stopped anywhere
leaves converted and untouched documents, never half-converted ones, and the next run
converts what is left. A dry run reads everything and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from teleconsult.core.domain import Privileges, RoomPolicy
from teleconsult.errors import InvalidRequest, ProviderError
from teleconsult.migration import rules
from teleconsult.migration.rules import CannotMigrate, Reason, Status
from teleconsult.providers.protocols import Identity, ParticipantEntry
from teleconsult.store.mongo.connection import MongoDatabase, short_reason
from teleconsult.store.mongo.records import MongoRecords
from teleconsult.store.mongo.users import MongoUserMap

ATTEMPTS = 3
"""Conversions of one document a run tries while the original keeps changing it."""
MIGRATED, WOULD_MIGRATE = "migrated", "would_migrate"
CONVERTED_AGAIN, WOULD_CONVERT_AGAIN = "converted_again", "would_convert_again"
ALREADY_MIGRATED, REMOVED = "already_migrated", "removed_during_run"
CANNOT = "cannot_migrate"
READ_FIELDS = (
    *rules.REPLACED_FIELDS,
    "__STATE__",
    "updatedAt",
    "participantsNumber",
    "bandyerRoomId",
    "duration",
)
"""What conversion reads of a teleconsultation: the compare-and-set's condition."""

Identify = Callable[[Sequence[ParticipantEntry]], Awaitable[list[Identity]]]
Clock = Callable[[], datetime]


def cannot(reason: Reason) -> str:
    return f"{CANNOT}:{reason.value}"


@dataclass(frozen=True)
class Options:
    apply: bool = False
    """False: a dry run, which writes nothing."""
    batch_size: int = 100
    limit: int | None = None
    """Stop after this many documents (both collections together); None: all of them."""
    samples: int = 5
    """Ids kept per outcome, for the report."""


@dataclass
class Tally:
    """Outcomes of one collection's documents: counts, and a few ids of each (ids only)."""

    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, outcome: str, document_id: str, samples: int) -> None:
        self.counts[outcome] += 1
        kept = self.samples.setdefault(outcome, [])
        if len(kept) < samples:
            kept.append(document_id)

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome.startswith(CANNOT))

    def as_json(self) -> dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "samples": dict(self.samples)}


@dataclass
class Summary:
    apply: bool
    users: Tally = field(default_factory=Tally)
    teleconsultations: Tally = field(default_factory=Tally)
    complete: bool = True
    """False when `limit` stopped the run before the end: run it again to go on."""
    unmigrated: int = 0
    """Teleconsultations still without this service's form after the run."""
    index_error: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.users.failed or self.teleconsultations.failed or self.index_error)

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": not self.apply,
            "complete": self.complete,
            "users": self.users.as_json(),
            "teleconsultations": self.teleconsultations.as_json(),
            "unmigratedTeleconsultations": self.unmigrated,
            "indexError": self.index_error,
        }


class Progress(Protocol):
    def advance(self, collection: str, done: int, total: int, tally: Tally) -> None: ...


class NoProgress:
    def advance(self, collection: str, done: int, total: int, tally: Tally) -> None:
        return None


@dataclass(frozen=True)
class Source:
    """Where the original's documents are, and the rules that give them our form."""

    database: Any
    teleconsultations: str
    users: str
    privileges: Privileges
    policy: RoomPolicy


class Migrator:
    def __init__(
        self,
        source: Source,
        identify: Identify,
        resolves_bare_ids: bool,
        options: Options,
        clock: Clock,
        progress: Progress | None = None,
    ) -> None:
        self.source = source
        self.identify = identify
        self.resolves_bare_ids = resolves_bare_ids
        self.options = options
        self.clock = clock
        self.progress = progress or NoProgress()
        self.before_write: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None
        """Awaited just before each write (tests: a write by the original in between)."""
        self._budget = options.limit

    @property
    def _users(self) -> Any:
        return self.source.database[self.source.users]

    @property
    def _records(self) -> Any:
        return self.source.database[self.source.teleconsultations]

    async def run(self) -> Summary:
        summary = Summary(apply=self.options.apply)
        # The user map first: the teleconsultations' participants are looked up in it.
        complete = await self._each(self.source.users, summary.users, self._user)
        if complete:
            complete = await self._each(
                self.source.teleconsultations, summary.teleconsultations, self._record
            )
        summary.complete = complete
        if self.options.apply:
            summary.index_error = await self._indexes()
        summary.unmigrated = await self._records.count_documents({"version": {"$exists": False}})
        return summary

    async def _each(
        self,
        name: str,
        tally: Tally,
        convert: Callable[[dict[str, Any]], Awaitable[str]],
    ) -> bool:
        """Every document of `name` in batches by `_id`; False when the limit stopped it."""
        collection = self.source.database[name]
        total, done, last = await collection.count_documents({}), 0, None
        while True:
            if self._budget is not None and self._budget <= 0:
                return False
            size = self.options.batch_size
            if self._budget is not None:
                size = min(size, self._budget)
            query: dict[str, Any] = {} if last is None else {"_id": {"$gt": last}}
            batch = [d async for d in collection.find(query, sort=[("_id", ASCENDING)], limit=size)]
            if not batch:
                return True
            for document in batch:
                tally.add(await convert(document), str(document["_id"]), self.options.samples)
            done += len(batch)
            last = batch[-1]["_id"]
            if self._budget is not None:
                self._budget -= len(batch)
            self.progress.advance(name, done, max(total, done), tally)

    async def _user(self, document: dict[str, Any]) -> str:
        for _ in range(ATTEMPTS):
            if rules.user_migrated(document):
                return ALREADY_MIGRATED
            try:
                fields = rules.convert_user(document)
                await self._no_earlier_entry(document, fields["receivedUserId"])
            except CannotMigrate as refused:
                return cannot(refused.reason)
            if not self.options.apply:
                return WOULD_MIGRATE
            fields[rules.MIGRATION_FIELD] = {"at": self.clock()}
            condition = {
                "_id": document["_id"],
                "provider": {"$exists": False},
                **{name: document.get(name) for name in ("receivedUserId", "auth0Id", "bandyerId")},
            }
            if await self._written(self._users, condition, fields, document):
                return MIGRATED
            found = await self._users.find_one({"_id": document["_id"]})
            if found is None:
                return REMOVED
            document = found
        return cannot(Reason.CHANGED_DURING_RUN)

    async def _no_earlier_entry(self, document: Mapping[str, Any], received: str) -> None:
        """One user id, one Kaleyra user: of two entries for one id, the first (by `_id`)
        is taken and the other reported."""
        earlier = await self._users.find_one(
            {
                "_id": {"$lt": document["_id"]},
                "$or": [{"receivedUserId": received}, {"auth0Id": received}],
                "provider": {"$in": [rules.PROVIDER, None]},
            }
        )
        if earlier is not None:
            raise CannotMigrate(
                Reason.DUPLICATE_USER_MAP_ENTRY,
                f"another user-map entry ({earlier['_id']}) has the same receivedUserId",
            )

    async def _record(self, document: dict[str, Any]) -> str:
        for _ in range(ATTEMPTS):
            status = rules.record_status(document)
            if status is Status.MIGRATED:
                return ALREADY_MIGRATED
            again = status is Status.CHANGED_BY_ORIGINAL
            try:
                fields = await self._conversion(document)
            except CannotMigrate as refused:
                return cannot(refused.reason)
            if not self.options.apply:
                return WOULD_CONVERT_AGAIN if again else WOULD_MIGRATE
            condition = {"_id": document["_id"], **{n: document.get(n) for n in READ_FIELDS}}
            condition["version"] = document.get("version", {"$exists": False})
            if await self._written(self._records, condition, fields, document):
                return CONVERTED_AGAIN if again else MIGRATED
            found = await self._records.find_one({"_id": document["_id"]})
            if found is None:
                return REMOVED
            document = found
        return cannot(Reason.CHANGED_DURING_RUN)

    async def _written(
        self,
        collection: Any,
        condition: dict[str, Any],
        fields: dict[str, Any],
        document: Mapping[str, Any],
    ) -> bool:
        """The compare-and-set: True when the document was still as read, and is converted."""
        if self.before_write is not None:
            await self.before_write(document)
        result = await collection.update_one(condition, {"$set": fields})
        return bool(result.matched_count == 1)

    async def _conversion(self, document: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(document["_id"], ObjectId):
            raise CannotMigrate(Reason.MALFORMED_RECORD, "_id is not an ObjectId")
        now = self.clock()
        record = rules.read_record(document, now)
        entries = rules.identity_entries(record, self.resolves_bare_ids)
        try:
            identities = await self.identify(entries) if entries else []
        except InvalidRequest as refused:
            path = refused.details[0]["path"]
            raise CannotMigrate(rules.identity_failure(path), f"{path}: refused") from None
        except ProviderError as failed:
            raise CannotMigrate(Reason.IDENTITY_PROVIDER_FAILED, failed.message) from None
        unmapped = [p.external_id for p in record.participants if p.provider_user_id is None]
        user_map = await self._user_map(unmapped)
        rooms = (self.source.privileges, self.source.policy)
        conversion = rules.convert_record(document, record, identities, user_map, rooms, now)
        return conversion.fields

    async def _user_map(self, external_ids: Sequence[str]) -> dict[str, str]:
        """Kaleyra users by external id, from entries converted or not (a dry run converts
        none); entries of another provider do not count."""
        if not external_ids:
            return {}
        found: dict[str, str] = {}
        query = {
            "$or": [
                {"receivedUserId": {"$in": list(external_ids)}},
                {"auth0Id": {"$in": list(external_ids)}},
            ]
        }
        async for entry in self._users.find(query, sort=[("_id", ASCENDING)]):
            if entry.get("provider", rules.PROVIDER) != rules.PROVIDER:
                continue
            received = entry.get("receivedUserId") or entry.get("auth0Id")
            kaleyra_user = entry.get("providerUserId") or entry.get("bandyerId")
            if isinstance(received, str) and isinstance(kaleyra_user, str):
                found.setdefault(received, kaleyra_user)
        return found

    async def _indexes(self) -> str | None:
        """Teleconsult's indexes on the converted collections (the service would create them
        on its first call; made here so that a conflict is reported now)."""
        connection = MongoDatabase(self.source.database)
        database = self.source.database
        try:
            await MongoUserMap(connection, self.source.users).create_indexes(database)
            await MongoRecords(connection, self.source.teleconsultations).create_indexes(database)
        except PyMongoError as error:
            return short_reason(error)
        return None
