"""A room transition: what a change does to a teleconsultation's room, in three named steps.

- `plan_change` / `plan_cancel` (pure): which room the written record needs (the current
  one kept, a new one created, or none) and which room it stops needing;
- `RoomTransitions.commit` (I/O): the provider work (a new room, with its outbox job written
  first) and the compare-and-set write, whose `Cutoff` refuses a change once the record
  is locked; a lost write undoes the provider work at once;
- `RoomTransitions.settle`: once written, the change's event line, the waiting GETs and
  the webhook deliverer told, and the outbox jobs finished (the room no longer needed
  deleted).

A new room is created before the write and the old one deleted after it, so a change
never leaves its record pointing to a room it deleted; what a request cannot finish
(the provider failed, the process died), the reconciler does from the jobs
(`core.outbox.RoomJobs`). `within_deadline` is the deadline of a commit (COMMIT_DEADLINE),
well inside the jobs' grace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from teleconsult.core import domain
from teleconsult.core.clock import Clock
from teleconsult.core.domain import Privileges, Room, RoomPolicy, RoomSpec, Teleconsultation
from teleconsult.core.events import CANCELLED, Announcer
from teleconsult.core.outbox import COMMIT_DEADLINE, RoomJobs
from teleconsult.errors import ProviderError, TooSlow, VersionConflict
from teleconsult.observability import logs
from teleconsult.providers import outbound
from teleconsult.providers.protocols import CreatedRoom, NamedRooms, VideoProvider
from teleconsult.store.base import Cutoff, Delivery, Records, RecordWrite, RoomJob

log = logging.getLogger("teleconsult.core.service")
"""The use cases' logger: a room's event lines are theirs, as operators know them."""

TOO_SLOW = (
    "The change did not complete in time; it may or may not have been applied. "
    "Read the teleconsultation before retrying."
)


@dataclass(frozen=True)
class Plan:
    """What a change does to rooms, decided before any I/O."""

    current: Teleconsultation | None
    """The record read (None when creating): the compare-and-set expects its version."""
    proposed: Teleconsultation
    """The record to write; its room is the one the plan gives it."""
    kind: str
    """The kind of change, for its events (`core.events`)."""
    create: RoomSpec | None
    """The room to create; None when the current one is kept or none is needed."""
    keep: Room | None
    """The current room, when it is still the right one."""
    retire: Room | None
    """The current room, when the written record no longer needs it: deleted after the write."""
    retire_reason: str
    """Why it goes, as the `room deleted` event line says."""
    locks: bool
    """Whether the write is refused from the record's lock time on (every change but cancel)."""


def plan_change(
    current: Teleconsultation | None, proposed: Teleconsultation, kind: str, spec: RoomSpec | None
) -> Plan:
    """The plan of a change whose record needs a room made to `spec` (None: no room yet)."""
    old = current.room if current is not None else None
    keep = old if old is not None and old.spec == spec else None
    create = spec if spec is not None and keep is None else None
    return Plan(
        current=current,
        proposed=proposed,
        kind=kind,
        create=create,
        keep=keep,
        retire=old if keep is None else None,
        retire_reason="replaced" if create is not None else "no_longer_needed",
        locks=current is not None,
    )


def plan_cancel(current: Teleconsultation, trashed: Teleconsultation) -> Plan:
    """The plan of a cancel: its room goes, and it is allowed even when locked."""
    return Plan(
        current=current,
        proposed=trashed,
        kind=CANCELLED,
        create=None,
        keep=None,
        retire=current.room,
        retire_reason="cancelled",
        locks=False,
    )


def plan_credentials(current: Teleconsultation, proposed: Teleconsultation, kind: str) -> Plan:
    """The plan of a change of one participant's credentials (a revoked link, a removal): the
    room stays, and it is allowed even when locked (it changes no room, only a credential)."""
    return Plan(
        current=current,
        proposed=proposed,
        kind=kind,
        create=None,
        keep=current.room,
        retire=None,
        retire_reason="",
        locks=False,
    )


@dataclass(frozen=True)
class Committed:
    """A plan carried out and written: what settling it finishes."""

    plan: Plan
    written: Teleconsultation
    creation: RoomJob | None
    """The new room's job, when one was created."""
    retirement: RoomJob | None
    """The retired room's job."""
    job_finished: bool
    """The write itself finished the creation's job (SQLite)."""
    has_deliveries: bool


@dataclass(eq=False)
class RoomTransitions:
    """Carries out plans: the provider work, the compare-and-set write, and its settling."""

    records: Records
    video: VideoProvider
    jobs: RoomJobs
    announcer: Announcer
    privileges: Privileges
    policy: RoomPolicy
    clock: Clock
    on_change: Callable[[str], None]

    def plan(self, current: Teleconsultation | None, proposed: Teleconsultation, kind: str) -> Plan:
        """`plan_change` with the room `proposed` needs under this service's rules."""
        return plan_change(
            current, proposed, kind, domain.room_spec(proposed, self.privileges, self.policy)
        )

    def room_name(self) -> str | None:
        """The next room's name, when the provider takes names chosen before the call
        (`NamedRooms`): its job carries it from the start, so the reconciler can find the
        room whatever happens to the creation."""
        return self.video.room_name() if isinstance(self.video, NamedRooms) else None

    async def apply(
        self,
        plan: Plan,
        announce: Callable[[Teleconsultation], None],
        opened: RoomJob | None = None,
    ) -> None:
        """`commit`, then `settle`: both within the caller's deadline."""
        await self.settle(await self.commit(plan, opened), announce)

    async def commit(self, plan: Plan, opened: RoomJob | None = None) -> Committed:
        """Do the plan's provider work and write its record; `opened`: the new room's job,
        if already written.

        The lock is part of the compare-and-set: the write carries the current record's lock
        time as its `Cutoff`, and the store refuses it when its clock, read at the write
        itself, has reached it (`CutoffPassed`), however early the lock was checked. From the
        lock time on, GET hands out links to the room of the record it reads (deciding on
        the time before its read), so a change never commits once a link may be out. A
        refused write is a lost race (`VersionConflict`): the new room is deleted, the old
        one kept, and the retry finds the record locked (409 `locked`).
        """
        creation, room = await self._new_room(plan, opened)
        retirement = None
        if plan.retire is not None:
            retirement = await self.jobs.open(plan.proposed.id, plan.retire.provider_room_id)
        written = replace(plan.proposed, room=room)
        deliveries = self.announcer.deliveries(plan.kind, plan.current, written)
        try:
            finished = await self._write(plan, written, deliveries, creation)
        except VersionConflict:  # certainly not written (the cutoff included): undo at once
            if creation is not None and room is not None:
                await self.jobs.settle(creation, room.provider_room_id, "lost_race")
            if retirement is not None:
                await self.jobs.close(retirement)  # the old room is still the record's
            raise
        # Any other failure may or may not have written the record (a lost acknowledgement):
        # both jobs stay, and the reconciler judges them against the record as it is.
        return Committed(plan, written, creation, retirement, finished, bool(deliveries))

    async def settle(
        self, committed: Committed, announce: Callable[[Teleconsultation], None]
    ) -> None:
        """After the write: `announce` logs the change, then the room's own event (created,
        replaced) is logged; the new room's job is closed and the retired room deleted."""
        written, plan = committed.written, committed.plan
        announce(written)
        self.on_change(written.id)
        if committed.has_deliveries:
            self.announcer.on_written()
        if committed.creation is not None and written.room is not None:
            logs.event(
                log,
                "room replaced" if plan.retire is not None else "room created",
                teleconsultationId=written.id,
                callerId=None,
                providerRoomId=written.room.provider_room_id,
                previousProviderRoomId=plan.retire.provider_room_id if plan.retire else None,
            )
            if not committed.job_finished:
                await self.jobs.close(committed.creation)  # the new room is the record's now
        if committed.retirement is not None and plan.retire is not None:
            await self.jobs.settle(
                committed.retirement, plan.retire.provider_room_id, plan.retire_reason
            )

    async def _new_room(
        self, plan: Plan, opened: RoomJob | None
    ) -> tuple[RoomJob | None, Room | None]:
        """The room the written record names, and the job of the one created for it."""
        if plan.create is None:
            if opened is not None:  # no room was needed after all
                await self.jobs.close(opened)
            return None, plan.keep
        creation = opened or await self.jobs.open(plan.proposed.id, self.room_name())
        try:
            created = await self._create_room(creation, plan.create)
        except ProviderError as error:
            if not error.may_have_acted:
                await self.jobs.close(creation)  # certainly no room
            elif error.late_id is not None and creation.room_id is None:
                self.jobs.follow(creation, error.late_id)  # its answer names it, if it comes
            # Else a room may exist: the job stays, and the reconciler deletes it by
            # the name the job carries, or counts it when the provider names its rooms
            # itself and its answer never came (docs/operations.md, "Limits").
            raise
        except BaseException:
            if creation.room_id is None:  # nothing could find a room it made anyway
                await self.jobs.close(creation)
            raise  # a named room may exist: the reconciler deletes it by its name
        await self.jobs.learn_room(creation, created.provider_room_id)
        room_id = created.provider_room_id
        return creation, Room(provider_room_id=room_id, spec=plan.create, links=created.links)

    async def _create_room(self, job: RoomJob, spec: RoomSpec) -> CreatedRoom:
        if job.room_id is not None and isinstance(self.video, NamedRooms):
            return await self.video.create_named_room(job.room_id, spec)
        return await self.video.create_room(spec)

    async def _write(
        self,
        plan: Plan,
        written: Teleconsultation,
        deliveries: Sequence[Delivery],
        creation: RoomJob | None,
    ) -> bool:
        """The compare-and-set write (an insert when creating); once written, the record names
        the new room: its job is done, in the same write where the store can (SQLite)."""
        done = creation.id if creation is not None else None
        write = RecordWrite(written, deliveries=deliveries, finished_job=done)
        if plan.current is None:
            return await self.records.insert(write)
        locks_at = domain.locks_at(plan.current, self.policy) if plan.locks else None
        cutoff = Cutoff(locks_at, self.clock) if locks_at is not None else None
        return await self.records.replace(
            replace(write, expected_version=plan.current.version, cutoff=cutoff)
        )


@asynccontextmanager
async def within_deadline(too_slow: str = TOO_SLOW) -> AsyncIterator[None]:
    """A commit's deadline (COMMIT_DEADLINE), rate-limit waits included: well inside the
    jobs' grace, so the reconciler never judges a room while its request may still write.
    Past it, 504 with `too_slow`."""
    seconds = COMMIT_DEADLINE.total_seconds()
    try:
        async with asyncio.timeout(seconds):
            with outbound.deadline(seconds):  # rate-limit waits fit inside it too
                yield
    except TimeoutError:
        raise TooSlow(too_slow) from None
