"""The store, one protocol per aggregate: records, the user map, the outbox, webhook deliveries,
idempotency keys, and what providers keep.

A backend (SQLite, MongoDB, ...) is a package with one module per aggregate, and the contract suite
in `tests/store_contract/` has one file per aggregate, so a new backend can be built and tested one
part at a time. Every backend gives these semantics:
- a record is written only if its `version` is still the one read (compare-and-set), so replicas
  sharing one database never lose an update, and, given a `Cutoff`, only while the clock read at the
  write is before it;
- trashed records are invisible to `get`;
- the user map holds one provider user per (provider, external id), whoever writes first wins;
- an outbox job, a webhook delivery and an idempotency key are leased or claimed by one conditional
  write each, so one replica wins;
- a change's webhook deliveries are written in the same write as its record (one transaction in
  SQLite; inside the record's own document in MongoDB, moved to the deliveries by `Webhooks.relay`),
  so none is lost or invented.
Failures to reach the database are `Unavailable` (503).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, fields
from datetime import datetime
from enum import StrEnum, auto
from typing import Any, Protocol

from teleconsult.core.clock import Clock
from teleconsult.core.domain import Phase, Teleconsultation
from teleconsult.store.audit import AuditTrail
from teleconsult.store.documents import new_object_id
from teleconsult.store.provider_data import ProviderData


@dataclass(frozen=True)
class RecordQuery:
    """A page of records in (start date, id) order: a keyset page, stable while records change."""

    limit: int
    participant: str | None = None
    """Only records with this participant (an external id); None: every record."""
    start_from: datetime | None = None
    """Inclusive."""
    start_before: datetime | None = None
    """Exclusive."""
    phase: Phase | None = None
    after: tuple[datetime, str] | None = None
    """The (start date, id) of the last record of the previous page."""


@dataclass(frozen=True)
class Cutoff:
    """When a write may no longer commit (a teleconsultation's lock time), with the clock to
    tell: the store reads it at the write itself, so the check and the write are one step.

    SQLite reads it inside the write's IMMEDIATE transaction (after every write before it,
    however long it waited for the lock); MongoDB, whose write is one `update_one`, just
    before sending it.
    """

    at: datetime
    clock: Clock

    def passed(self) -> bool:
        return self.clock() >= self.at


class DeliveryStatus(StrEnum):
    """Where one webhook delivery stands, stored as its name in lower case (`auto()`)."""

    PENDING = auto()
    """To be sent at its `next_at` (again, after a failed attempt)."""
    DELIVERED = auto()
    FAILED = auto()
    """Not delivered within WEBHOOK_MAX_AGE_MS, or its endpoint is off: for an operator."""
    DROPPED = auto()
    """Withdrawn before it was sent (a `links.available` whose room went)."""


@dataclass(frozen=True)
class Delivery:
    """One event for one webhook endpoint, and where its sending stands.

    Deliveries of one endpoint and teleconsultation go out one at a time, in the
    order of (`due_at`, `seq`). Writing a delivery whose id exists changes it only
    when the stored one is pending or dropped and of an older `version`: so a
    time-based event is moved or withdrawn by later changes, and a write repeated
    (the MongoDB relay after a crash) changes nothing.
    """

    id: str
    event_id: str
    """The `webhook-id`: the same at every attempt, so receivers can drop duplicates."""
    endpoint: str
    teleconsultation_id: str
    type: str
    payload: dict[str, Any]
    due_at: datetime
    seq: int
    version: int
    status: DeliveryStatus
    next_at: datetime
    """When it may be tried (again)."""
    deadline: datetime
    """After a failed attempt past this, it fails for good."""
    attempts: int = 0
    last_error: str | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class RecordWrite:
    """What one compare-and-set write of a record carries (`Records.insert`, `replace`):
    the record, and what commits with it or not at all."""

    record: Teleconsultation
    expected_version: int | None = None
    """The stored version `replace` overwrites; None for `insert` (the id is new)."""
    _: KW_ONLY
    deliveries: Sequence[Delivery] = ()
    """The webhook deliveries of the events the change makes."""
    finished_job: str | None = None
    """An outbox job the write makes needless (the job of the room the record now names)."""
    cutoff: Cutoff | None = None
    """For `replace`: the record's lock time, past which the write no longer commits."""


class Records(Protocol):
    """Teleconsultation records."""

    async def insert(self, write: RecordWrite) -> bool:
        """Store a new record (its id is new) and, in the same write, its deliveries.

        The answer is whether `write.finished_job` went in the same write: a store that can
        delete it there does, and answers True; one that cannot (MongoDB: no write spans two
        collections here) leaves it and answers False, and the caller finishes it. Without a
        job the answer is False.
        """
        ...

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        """The record with this id, or None when there is none or it is trashed."""
        ...

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        """The record with this id, trashed or not (for the reconciler)."""
        ...

    async def replace(self, write: RecordWrite) -> bool:
        """Overwrite the record if its stored version is `write.expected_version`, and write
        its deliveries in the same write; the answer as for `insert`.

        Raise `VersionConflict` otherwise (including when it was trashed meanwhile), and
        `CutoffPassed` when `write.cutoff` has passed at the write; then no delivery is
        written and no job finished.
        """
        ...

    async def find_by_room(self, provider_room_id: str) -> Teleconsultation | None:
        """The live record pointing to this provider room, or None (for provider events)."""
        ...

    async def versions(self, teleconsultation_ids: Sequence[str]) -> dict[str, int]:
        """The stored version of each of these records, trashed or not (absent: no such
        record); one query, for the waiting GETs (`core.waiting`)."""
        ...

    async def count_by_state(self) -> dict[str, int]:
        """How many records are in each `teleconsultationState` (trashed ones are `cancelled`)."""
        ...

    async def count_unmigrated(self) -> int:
        """How many documents are not in this service's form (the original service's, before
        `teleconsult migrate`): a count for `/-/check-up`."""
        ...

    async def find_page(self, query: RecordQuery) -> list[Teleconsultation]:
        """Records (trashed ones too) matching `query`, by start date then id, `limit` at most."""
        ...

    async def purge(self, purge: RecordPurge) -> list[Teleconsultation]:
        """Delete the records `purge` names; return those deleted.

        Each deleted record's room gets an outbox job (`RecordPurge.room_jobs`), in the
        deletion's transaction or before the deletion, so the room goes with its record
        whatever happens next: the reconciler deletes it."""
        ...

    async def in_use(self, external_ids: Sequence[str]) -> set[str]:
        """Which of these external ids some record (trashed or not) has as a participant."""
        ...


class UserMap(Protocol):
    """External user ids and the provider users that stand for them."""

    async def find_user(self, provider: str, external_id: str) -> str | None:
        """The provider user id mapped to `external_id`, or None."""
        ...

    async def add_users(
        self, provider: str, users: Mapping[str, str], creator_id: str
    ) -> dict[str, str]:
        """Map each external id of `users` to its provider user id unless already mapped, all in
        one write (one commit, not one per user); return the provider user id stored for each.
        A mapping written first (by a concurrent request or replica) wins."""
        ...

    async def holders(self, provider: str, provider_user_id: str) -> list[str]:
        """The external ids mapped to `provider_user_id` (the map read backwards), two at
        most: more than one means a mapping no one should use."""
        ...

    async def forget(self, external_ids: Sequence[str]) -> int:
        """Delete these external ids' mappings, for every provider; return how many went."""
        ...


@dataclass(frozen=True)
class RoomJob:
    """Outbox work: room `room_id` of a teleconsultation may have lost its record; make sure.

    Written before the step that could orphan the room (its creation, its replacement,
    a cancel), so a crash or a failed deletion leaves the job behind. The reconciler
    deletes the room unless the teleconsultation's live record still points to it.
    `room_id` is None while the room's creation is under way (its id not yet known),
    unless the provider took a name chosen before (`NamedRooms`). Retention writes one
    for the room of each record it deletes.
    """

    id: str
    teleconsultation_id: str
    room_id: str | None
    created_at: datetime
    not_before: datetime
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class RecordPurge:
    """What one retention batch deletes (`Records.purge`): up to `limit` records trashed
    (cancelled) before `trashed_before` and, when `ended_before` is given, live ones that ended
    before it; their rooms' jobs are written at `now`, due at `rooms_due`."""

    trashed_before: datetime
    ended_before: datetime | None
    limit: int
    _: KW_ONLY
    now: datetime
    rooms_due: datetime

    def room_jobs(self, purged: Sequence[Teleconsultation]) -> list[RoomJob]:
        """The jobs that delete the rooms of the records this purge deleted."""
        return [
            RoomJob(
                new_object_id(), record.id, record.room.provider_room_id, self.now, self.rooms_due
            )
            for record in purged
            if record.room is not None
        ]


class Outbox(Protocol):
    """Room jobs: what a request could not finish, the reconciler does."""

    async def add_job(self, job: RoomJob) -> None: ...

    async def set_job_room(self, job_id: str, room_id: str) -> None:
        """Record the room a job's creation made, as soon as the provider named it."""
        ...

    async def finish_job(self, job_id: str) -> None: ...

    async def retry_job(self, job_id: str, not_before: datetime, error: str) -> None:
        """Count a failed attempt, release the job's lease, and wait until `not_before`."""
        ...

    async def claim_jobs(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[RoomJob]:
        """Lease up to `limit` jobs that are due and not leased by a live owner."""
        ...

    async def job_backlog(self) -> tuple[int, datetime | None]:
        """How many jobs wait, and when the oldest was written."""
        ...


class Webhooks(Protocol):
    """Webhook deliveries, leased to one replica at a time, and the endpoints turned off."""

    async def relay(self, limit: int) -> int:
        """Make the deliveries written with up to `limit` records claimable; return how many
        records had some. A store that writes them in place (SQLite) has none to relay."""
        ...

    async def claim(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[Delivery]:
        """Lease up to `limit` pending deliveries that are due, not leased by a live owner,
        and first of their endpoint and teleconsultation (none pending before them)."""
        ...

    async def delivered(self, delivery_id: str, owner: str, version: int, now: datetime) -> bool:
        """Mark a delivery `owner` leases delivered; False when the lease was lost or a
        later change rewrote it (it will be sent again)."""
        ...

    async def retry_later(
        self, delivery_id: str, owner: str, version: int, next_at: datetime, error: str
    ) -> bool:
        """Count a failed attempt, release the lease, wait until `next_at`; the deliveries
        queued behind it wait as long."""
        ...

    async def fail(
        self, delivery_id: str, owner: str, version: int, now: datetime, error: str
    ) -> bool:
        """Mark a delivery `owner` leases failed (counting the attempt)."""
        ...

    async def fail_endpoint(self, endpoint: str, now: datetime, error: str) -> int:
        """Mark failed the pending, unleased deliveries of an endpoint that is off."""
        ...

    async def list_failed(self, limit: int) -> list[Delivery]:
        """The failed deliveries, the most recently failed first."""
        ...

    async def retry_failed(self, delivery_id: str, now: datetime, deadline: datetime) -> bool:
        """Make a failed delivery pending again, due now (or when it was to happen, if that
        is later); False when none has this id."""
        ...

    async def get(self, delivery_id: str) -> Delivery | None: ...

    async def turn_off(self, endpoint: str, url: str, now: datetime) -> None:
        """Remember that `endpoint`, at `url`, answered 410 Gone: every replica stops."""
        ...

    async def turned_off(self) -> dict[str, str]:
        """The endpoints turned off, each with the URL that answered 410."""
        ...

    async def turn_on(self, endpoint: str) -> None: ...

    async def purge(self, done_before: datetime, failed_before: datetime, limit: int) -> int:
        """Delete up to `limit` deliveries delivered or dropped before `done_before`, and
        as many failed before `failed_before` (or still pending with a deadline before it:
        never sent since their endpoint was removed); return how many went."""
        ...

    async def backlog(self) -> tuple[int, int, datetime | None]:
        """How many deliveries are pending and failed; when the oldest pending one was due."""
        ...


@dataclass(frozen=True)
class KeyClaim:
    """A new request's claim on an Idempotency-Key (`scope`): whose request, which one
    (`fingerprint`), the claim's own `token`, and until when it holds."""

    scope: str
    caller: str
    fingerprint: str
    token: str
    now: datetime
    expires_at: datetime


@dataclass(frozen=True)
class KeyedAnswer:
    """What an Idempotency-Key holds: the request it was first used for, and its answer."""

    fingerprint: str
    status: int | None
    """None while the first request is still being processed."""
    body: str | None


class IdempotencyKeys(Protocol):
    """`Idempotency-Key`s and the answers they keep."""

    async def claim_key(self, claim: KeyClaim) -> KeyedAnswer | None:
        """Claim a key for a new request and return None; or, when the key is already held
        (and not expired at `claim.now`), return what it holds."""
        ...

    async def finish_key(
        self, scope: str, token: str, status: int, body: str, expires_at: datetime
    ) -> None:
        """Store the answer of the request that claimed the key, kept until `expires_at`.
        Nothing happens if the claim is no longer `token`'s (it expired and was retaken)."""
        ...

    async def release_key(self, scope: str, token: str) -> None:
        """Forget a key `token` claimed (its request failed without changing anything)."""
        ...

    async def count_keys(self, caller: str, now: datetime) -> int:
        """How many unexpired keys `caller` holds."""
        ...

    async def purge_expired_keys(self, now: datetime, limit: int) -> int:
        """Delete up to `limit` keys expired at `now`; return how many went."""
        ...


class Leases(Protocol):
    """Named leases, so that one replica at a time does a job all could do (retention)."""

    async def take(self, name: str, owner: str, now: datetime, until: datetime) -> bool:
        """Hold `name` until `until` if it is free, expired at `now`, or already `owner`'s
        (one conditional write: one replica wins); return whether `owner` holds it."""
        ...


class Health(Protocol):
    """The connection itself."""

    async def ping(self) -> None:
        """Raise `Unavailable` when the database cannot be reached."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Store:
    """One database, seen through its aggregates."""

    records: Records
    users: UserMap
    outbox: Outbox
    webhooks: Webhooks
    idempotency: IdempotencyKeys
    provider_data: ProviderData
    health: Health
    audit: AuditTrail
    leases: Leases

    def aggregates(self) -> tuple[object, ...]:
        """Each aggregate, in the order declared above: the one list of them, for backends
        (each one's schema) and wrappers."""
        return tuple(getattr(self, aggregate.name) for aggregate in fields(self))

    def wrapped(self, wrap: Callable[[Any], Any]) -> Store:
        """This store with each aggregate wrapped (`measured`: timed and counted)."""
        return Store(*(wrap(aggregate) for aggregate in self.aggregates()))
