"""Use cases: create, update, add a participant, join, cancel.

Each use case reads the record, lets the domain decide, does the provider work,
and writes the record back with compare-and-set, together with the webhook
deliveries of the events it makes (`core.events`), in the same store write.
When another replica wrote first, the work is redone on the fresh record (a
bounded number of times) and the room made for the losing attempt is deleted,
so concurrent requests lose nothing. The outbox bookkeeping around each room is
`core.outbox.RoomJobs`.

Each change is logged as one event line (`observability.logs.event`) once its
write succeeded: never for an attempt that lost, never with a name or a link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Generic, TypeVar

from teleconsult.core import domain, events
from teleconsult.core.clock import Clock, format_date, utc_now
from teleconsult.core.domain import (
    ANONYMOUS,
    Level,
    Participant,
    Privileges,
    RecordState,
    Room,
    RoomPolicy,
    RoomSpec,
    Teleconsultation,
    WritePolicy,
)
from teleconsult.core.events import Announcer
from teleconsult.core.outbox import COMMIT_DEADLINE, RoomJobs
from teleconsult.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    ProviderError,
    TooSlow,
    Unauthorized,
    VersionConflict,
)
from teleconsult.observability import logs, redaction
from teleconsult.providers import outbound
from teleconsult.providers.helpers import gather_all
from teleconsult.providers.protocols import (
    Caller,
    CreatedRoom,
    Identity,
    IdentityProvider,
    JoinRequest,
    NamedRooms,
    ParticipantEntry,
    VideoProvider,
)
from teleconsult.store.base import Cutoff, RoomJob, Store
from teleconsult.store.documents import is_object_id, new_teleconsultation_id

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 10
"""Compare-and-set attempts before giving up with a 409; each lost attempt means another
request on the same teleconsultation succeeded, so this only runs out under heavy contention."""


@dataclass(frozen=True)
class ParticipantsInput:
    number: int
    entries: tuple[ParticipantEntry, ...] | None
    """The participants given; None (an update without `data`) keeps the known ones."""
    bare_ids: bool = False
    """True for the array-of-user-ids form, which needs an identity provider that resolves ids."""


@dataclass(frozen=True)
class ScheduleInput:
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_in_seconds: int | None = None


@dataclass(frozen=True)
class JoinInfo:
    provider_user_id: str
    access_link: str | None
    participants: tuple[tuple[str, str], ...]
    """(provider user id, full name) of every known participant."""
    provider_room_id: str | None
    """The room, once everyone is known."""
    version: int = 0
    """The record version read: a waiting GET waits for a later one (`core.waiting`)."""
    opens_at: datetime | None = None
    """When the link is handed out, once the room exists (the lock time)."""
    attendance: dict[str, object] | None = None
    """Who joined the call when (`events.attendance`), once the provider reported any."""
    ended: bool = False
    """The provider reported the call's end: no link any more, and nothing to wait for."""


class TeleconsultationService:
    def __init__(
        self,
        store: Store,
        video: VideoProvider,
        identity: IdentityProvider,
        privileges: Privileges,
        policy: RoomPolicy,
        clock: Clock = utc_now,
        background_groups: frozenset[str] = frozenset(),
        write_policy: WritePolicy = domain.OPEN_WRITES,
        announcer: Announcer | None = None,
        on_change: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.on_change = on_change
        """Told the id of each record this replica wrote: wakes its waiting GETs."""
        self.announcer = announcer or Announcer()
        self.write_policy = write_policy
        self.video = video
        self.identity = identity
        self.privileges = privileges
        self.policy = policy
        self.clock = clock
        self.background_groups = background_groups
        self.jobs = RoomJobs(store.outbox, video, clock)

    # -- use cases ---------------------------------------------------------------------------

    async def create(
        self, participants: ParticipantsInput, schedule: ScheduleInput, caller: Caller
    ) -> str:
        start, end = self._schedule(None, schedule, self.clock())
        self._check_input(participants)
        record_id = new_teleconsultation_id()

        def record(members: Sequence[Participant]) -> Teleconsultation:
            now = self.clock()
            return Teleconsultation(
                id=record_id,
                participants_number=participants.number,
                participants=tuple(members),
                start_date=start,
                end_date=end,
                room=None,
                state=RecordState.PUBLIC,
                version=1,
                created_at=now,
                updated_at=now,
                creator_id=caller.id or ANONYMOUS,
                updater_id=caller.id or ANONYMOUS,
            )

        def created(written: Teleconsultation) -> None:
            _event("teleconsultation created", written, caller, **_counts(written))

        identified = await self._identified(participants, caller, check_plus=True)
        members = self._with_provider_users(identified, caller)
        if len(identified) < participants.number:  # no room yet
            await self._commit(None, record(await members), events.CREATED, created)
            return record_id
        # Everyone is known and accepted, so a room will be created: its job is written
        # while the users are, not after them, and the deadline covers both (the job's
        # grace runs from its opening).
        async with _in_time():
            creation, known = await self.jobs.open_during(record_id, members, self._room_name())
            await self._commit_in_time(None, record(known), events.CREATED, created, creation)
        return record_id

    async def update(
        self,
        teleconsultation_id: str,
        participants: ParticipantsInput | None,
        schedule: ScheduleInput,
        caller: Caller,
    ) -> None:
        if participants is not None:
            self._check_input(participants)

        async def replace_participants() -> tuple[Participant, ...]:
            if participants is None or participants.entries is None:
                return ()
            return tuple(await self._participants(participants, caller, check_plus=True))

        replacements = _Once(replace_participants)

        async def change(current: Teleconsultation, now: datetime) -> Teleconsultation:
            self._refuse_if_locked(current, now)
            start, end = self._schedule(current, schedule, now)
            number, members = current.participants_number, current.participants
            if participants is not None and participants.entries is None:
                number = participants.number  # a new count for the participants already known
                self._check_counts(number, [m.external_id for m in members])
                if len(members) == number:
                    domain.check_plus_rule([m.level for m in members])
            elif participants is not None:
                number, members = participants.number, await replacements.result()
            return replace(
                current,
                participants_number=number,
                participants=members,
                start_date=start,
                end_date=end,
            )

        def changed(before: Teleconsultation, written: Teleconsultation) -> None:
            fields = domain.changed_fields(before, written)
            _event("teleconsultation changed", written, caller, changed=fields)

        await self._mutate(teleconsultation_id, caller, change, events.UPDATED, changed)

    async def add_participant(
        self, teleconsultation_id: str, entry: ParticipantEntry, caller: Caller
    ) -> None:
        newcomer = _Once(
            lambda: self._participants(ParticipantsInput(1, (entry,)), caller, check_plus=False)
        )

        async def change(current: Teleconsultation, now: datetime) -> Teleconsultation:
            self._refuse_if_locked(current, now)
            if current.participant(entry.external_id) is not None:
                raise InvalidRequest(
                    f"Participant {entry.external_id!r} is already in this teleconsultation.",
                    path="userExternalId",
                )
            if current.complete:
                raise InvalidRequest(
                    f"This teleconsultation already has all its {current.participants_number} "
                    "participants; PATCH its participants to change them."
                )
            members = (*current.participants, *await newcomer.result())
            if len(members) == current.participants_number:
                domain.check_plus_rule([m.level for m in members])
            return replace(current, participants=members)

        def added(_: Teleconsultation, written: Teleconsultation) -> None:
            newcomer = entry.external_id
            _event("participant added", written, caller, participantId=newcomer, **_counts(written))

        await self._mutate(teleconsultation_id, caller, change, events.PARTICIPANT_ADDED, added)

    async def join(
        self,
        teleconsultation_id: str,
        caller: Caller,
        language: str | None = None,
        use_background: bool | None = None,
    ) -> JoinInfo:
        """The caller's view: their link once the room can no longer change, else None.

        The link opens in `language` (else the participant's own) and with the virtual
        background when `use_background` says so (else when the participant's groups
        are in groupsWithBackgroundList). The provider makes it now, for this caller.
        """
        caller_id = require_caller(caller)  # before the lookup: an unknown caller learns nothing
        # The time before the read: a record read at or after the lock can no longer change
        # (a change is refused from the lock on, at its write: `_commit_in_time`), while one
        # read before may be replaced, before the lock, while the read answers.
        now = self.clock()
        record = await self.load(teleconsultation_id)
        me = record.participant(caller_id)
        if me is None:
            raise Unauthorized("The caller is not a participant of this teleconsultation.")
        link = None
        ended = record.phase is domain.Phase.ENDED
        if not ended and record.room is not None and domain.is_locked(record, self.policy, now):
            request = self._join_request(record, record.room, me, language, use_background)
            link = self.video.join_link(request)
        redaction.sensitive([link, *(p.full_name for p in record.participants)])
        return JoinInfo(
            provider_user_id=me.provider_user_id,
            access_link=link,
            participants=tuple((p.provider_user_id, p.full_name) for p in record.participants),
            provider_room_id=record.room.provider_room_id if record.room else None,
            version=record.version,
            opens_at=domain.lock_time(record, self.policy) if record.room else None,
            attendance=None
            if record.attendance == domain.NO_ATTENDANCE
            else events.attendance(record, self.clock(), self.announcer.no_show_after),
            ended=ended,
        )

    def _join_request(
        self,
        record: Teleconsultation,
        room: Room,
        me: Participant,
        language: str | None,
        use_background: bool | None,
    ) -> JoinRequest:
        background = (
            use_background
            if use_background is not None
            else bool(self.background_groups & set(me.groups))
        )
        [seat] = [p for p in room.spec.participants if p.provider_user_id == me.provider_user_id]
        return JoinRequest(
            teleconsultation_id=record.id,
            provider_room_id=room.provider_room_id,
            participant=seat,
            display_name=me.full_name,
            stored_link=room.links.get(me.provider_user_id),
            language=language or me.language,
            background=background,
            opens_at=domain.lock_time(record, self.policy),
            starts_at=record.start_date,
            ends_at=record.end_date,
            limited=room.spec.duration_seconds is not None,
        )

    async def cancel(self, teleconsultation_id: str, caller: Caller) -> None:
        """Trash the record, then delete its room (allowed even when locked).

        The record stops pointing to the room first, so no link to a room being
        deleted is ever handed out; the deletion is an outbox job written before the
        record changes, so a provider failure or a crash only delays it: the
        reconciler finishes it. Cancelling never fails because of the provider.
        """
        for _ in range(MAX_ATTEMPTS):
            current = await self.load_for_change(teleconsultation_id, caller)
            room = current.room
            job = await self.jobs.open(current.id, room.provider_room_id) if room else None
            trashed = replace(
                current,
                state=RecordState.TRASH,
                room=None,
                version=current.version + 1,
                updated_at=self.clock(),
                updater_id=caller.id or ANONYMOUS,
            )
            deliveries = self.announcer.deliveries(events.CANCELLED, current, trashed)
            try:
                async with asyncio.timeout(COMMIT_DEADLINE.total_seconds()):
                    await self.store.records.replace(trashed, current.version, deliveries)
            except VersionConflict:
                if job is not None:
                    await self.jobs.close(job)  # the room is still the record's: keep it
                continue
            except TimeoutError:
                raise TooSlow(
                    "Cancelling did not complete in time; it may or may not have been applied."
                ) from None
            deleting = room.provider_room_id if room else None
            _event("teleconsultation cancelled", current, caller, providerRoomId=deleting)
            self.on_change(current.id)
            if deliveries:
                self.announcer.on_written()
            if job is not None and room is not None:
                await self.jobs.settle(job, room.provider_room_id, "cancelled")
            return
        raise _too_much_contention()

    # -- steps -------------------------------------------------------------------------------

    async def load(self, teleconsultation_id: str) -> Teleconsultation:
        """The live record with this id, or 404 with the documented error."""
        record = None
        if is_object_id(teleconsultation_id):
            record = await self.store.records.get(teleconsultation_id)
        if record is None:
            raise NotFound(
                f"No teleconsultation has the id {teleconsultation_id!r}: it never existed "
                "or was deleted.",
                error=f"Room with id {teleconsultation_id} not found on CRUD",
            )
        return record

    async def load_for_change(self, teleconsultation_id: str, caller: Caller) -> Teleconsultation:
        """The live record, if `caller` may change it (its creator, a plus participant, an
        admin); else 403."""
        record = await self.load(teleconsultation_id)
        if not domain.may_change(
            record, caller.id, caller.groups or frozenset(), self.write_policy
        ):
            refused = domain.NOT_AN_OWNER if caller.id else domain.ANONYMOUS_WRITES_REFUSED
            raise Forbidden(refused)
        return record

    async def _mutate(
        self,
        teleconsultation_id: str,
        caller: Caller,
        change: Callable[[Teleconsultation, datetime], Awaitable[Teleconsultation]],
        kind: str,
        announce: Callable[[Teleconsultation, Teleconsultation], None],
    ) -> None:
        """Apply `change` with compare-and-set; `announce(before, written)` logs the one
        attempt whose write succeeded."""
        for _ in range(MAX_ATTEMPTS):
            current = await self.load_for_change(teleconsultation_id, caller)
            now = self.clock()
            proposed = await change(current, now)
            proposed = replace(
                proposed,
                version=current.version + 1,
                updated_at=now,
                updater_id=caller.id or ANONYMOUS,
            )
            try:
                await self._commit(current, proposed, kind, partial(announce, current))
            except VersionConflict:
                continue
            return
        raise _too_much_contention()

    async def _commit(
        self,
        current: Teleconsultation | None,
        proposed: Teleconsultation,
        kind: str,
        announce: Callable[[Teleconsultation], None],
    ) -> None:
        """Give `proposed` the room it needs, write it (with the events of `kind` of change),
        then delete the room it no longer needs.

        A new room is created before the write and the old one deleted after it, so
        a change never leaves its record pointing to a room it deleted. Each room
        that could be orphaned (the new one if the write fails or the process dies,
        the old one once replaced) has an outbox job written first: what this
        request cannot finish, the reconciler does. Once the write succeeded, `announce`
        logs the change, then the room's own event (created, replaced) is logged.

        The whole step has a deadline (COMMIT_DEADLINE) well inside the jobs' grace,
        so the reconciler never judges a room while its request may still write.
        """
        async with _in_time():
            await self._commit_in_time(current, proposed, kind, announce)

    async def _commit_in_time(
        self,
        current: Teleconsultation | None,
        proposed: Teleconsultation,
        kind: str,
        announce: Callable[[Teleconsultation], None],
        opened: RoomJob | None = None,
    ) -> None:
        """`_commit` within its deadline; `opened`: the new room's job, if already written.

        The lock is part of the compare-and-set: the write carries the current record's lock
        time as its `Cutoff`, and the store refuses it when its clock, read at the write
        itself, has reached it (`CutoffPassed`), however early the lock was checked. From the
        lock time on, GET hands out links to the room of the record it reads (deciding on
        the time before its read), so a change never commits once a link may be out. A
        refused write is a lost race: the new room is deleted, the old one kept, and the
        retry finds the record locked (409 `locked`).
        """
        old_room = current.room if current is not None else None
        spec = domain.room_spec(proposed, self.privileges, self.policy)
        creation = None
        if spec is None:
            new_room = None
        elif old_room is not None and old_room.spec == spec:
            new_room = old_room
        else:
            creation = opened or await self.jobs.open(proposed.id, self._room_name())
            try:
                created = await self._create_room(creation, spec)
            except ProviderError as error:
                if not error.may_have_acted:
                    await self.jobs.close(creation)  # certainly no room
                # Else a room may exist: the job stays, and the reconciler deletes it by
                # the name the job carries, or counts it when the provider names its rooms
                # itself (docs/operations.md, "Limits").
                raise
            except BaseException:
                if creation.room_id is None:  # nothing could find a room it made anyway
                    await self.jobs.close(creation)
                raise  # a named room may exist: the reconciler deletes it by its name
            await self.jobs.learn_room(creation, created.provider_room_id)
            new_room = Room(
                provider_room_id=created.provider_room_id, spec=spec, links=created.links
            )
        if opened is not None and creation is None:  # no room was needed after all
            await self.jobs.close(opened)
        retiring = old_room if old_room is not None and old_room is not new_room else None
        retirement = (
            await self.jobs.open(proposed.id, retiring.provider_room_id) if retiring else None
        )
        record = replace(proposed, room=new_room)
        deliveries = self.announcer.deliveries(kind, current, record)
        # Once written, the record names the new room: its job is done, in the same write
        # where the store can (SQLite), else just after.
        done = creation.id if creation is not None else None
        records = self.store.records
        try:
            if current is None:
                finished = await records.insert(record, deliveries, finished_job=done)
            else:
                locks_at = domain.locks_at(current, self.policy)
                cutoff = Cutoff(locks_at, self.clock) if locks_at is not None else None
                finished = await records.replace(
                    record, current.version, deliveries, finished_job=done, cutoff=cutoff
                )
        except VersionConflict:  # certainly not written (the cutoff included): settle at once
            if creation is not None and new_room is not None:
                await self.jobs.settle(creation, new_room.provider_room_id, "lost_race")
            if retirement is not None:
                await self.jobs.close(retirement)  # the old room is still the record's
            raise
        # Any other failure may or may not have written the record (a lost acknowledgement):
        # both jobs stay, and the reconciler judges them against the record as it is.
        announce(record)
        self.on_change(record.id)
        if deliveries:
            self.announcer.on_written()
        if new_room is not None and creation is not None:
            _event(
                "room replaced" if retiring is not None else "room created",
                record,
                providerRoomId=new_room.provider_room_id,
                previousProviderRoomId=retiring.provider_room_id if retiring else None,
            )
            if not finished:
                await self.jobs.close(creation)  # the new room is the record's now
        if retirement is not None and retiring is not None:
            why = "replaced" if new_room is not None else "no_longer_needed"
            await self.jobs.settle(retirement, retiring.provider_room_id, why)

    def _room_name(self) -> str | None:
        """The next room's name, when the provider takes names chosen before the call
        (`NamedRooms`): its job carries it from the start, so the reconciler can find the
        room whatever happens to the creation."""
        return self.video.room_name() if isinstance(self.video, NamedRooms) else None

    async def _create_room(self, job: RoomJob, spec: RoomSpec) -> CreatedRoom:
        if job.room_id is not None and isinstance(self.video, NamedRooms):
            return await self.video.create_named_room(job.room_id, spec)
        return await self.video.create_room(spec)

    def _schedule(
        self, current: Teleconsultation | None, schedule: ScheduleInput, now: datetime
    ) -> tuple[datetime, datetime]:
        """Start and end after applying `schedule` to `current` (None when creating)."""
        if schedule.end_date is not None and schedule.duration_in_seconds is not None:
            raise InvalidRequest(
                "Give either end_date or duration_in_seconds, not both.", path="duration_in_seconds"
            )
        start = schedule.start_date or (current.start_date if current else None)
        if start is None:
            raise InvalidRequest("start_date is required.", path="start_date")
        if schedule.duration_in_seconds is not None:
            end = start + timedelta(seconds=schedule.duration_in_seconds)
        elif schedule.end_date is not None:
            end = schedule.end_date
        elif current is not None:
            end = current.end_date
        else:
            raise InvalidRequest("end_date (or duration_in_seconds) is required.", path="end_date")
        domain.check_schedule(start, end, now, self.policy, self.video.limits)
        return start, end

    def _check_input(self, participants: ParticipantsInput) -> None:
        """What can be refused before any I/O: the form of the list, then its counts."""
        if participants.bare_ids and not self.identity.resolves_bare_ids:
            raise InvalidRequest(
                f"participants as an array of user ids needs an identity provider that knows "
                f"the users; the {self.identity.name!r} identity provider does not. Send "
                '{"number": n, "data": [{"userExternalId", "groups", "fullName"}]} instead.',
                path="participants",
            )
        if participants.entries is not None:
            self._check_counts(participants.number, [e.external_id for e in participants.entries])

    def _check_counts(self, number: int, external_ids: Sequence[str]) -> None:
        domain.check_participant_counts(number, external_ids, self.video.limits)

    def _refuse_if_locked(self, record: Teleconsultation, now: datetime) -> None:
        if domain.is_locked(record, self.policy, now):
            since = domain.lock_time(record, self.policy)
            raise Conflict(
                f"The teleconsultation is locked since {format_date(since)}: all participants "
                "are known and its start is within IMMUTABLE_PERIOD_MS, so its room can no "
                "longer change. Cancel it and create a new one instead.",
                code="locked",
            )

    async def _participants(
        self, participants: ParticipantsInput, caller: Caller, *, check_plus: bool
    ) -> list[Participant]:
        """Identify the given participants and give them provider users."""
        identified = await self._identified(participants, caller, check_plus=check_plus)
        return await self._with_provider_users(identified, caller)

    async def _identified(
        self, participants: ParticipantsInput, caller: Caller, *, check_plus: bool
    ) -> list[_Identified]:
        """Identify the given participants. When they are everyone and `check_plus` is set,
        the plus rule is checked too, so a refused request creates no provider user."""
        identified = await self._identify(participants.entries or (), caller)
        if check_plus and len(identified) == participants.number:
            domain.check_plus_rule([i.level for i in identified])
        return identified

    async def _identify(
        self, entries: Sequence[ParticipantEntry], caller: Caller
    ) -> list[_Identified]:
        identities = await self.identity.identify(entries, caller)
        redaction.sensitive(identity.full_name for identity in identities)
        return [
            _Identified(
                entry=entry,
                identity=identity,
                level=domain.level_of_participant(
                    self.privileges, identity.external_id, identity.groups, entry.path
                ),
            )
            for entry, identity in zip(entries, identities, strict=True)
        ]

    async def _with_provider_users(
        self, identified: Sequence[_Identified], caller: Caller
    ) -> list[Participant]:
        """Map each participant to a provider user (`provider_users`)."""
        wanted = [(i.identity.external_id, i.level) for i in identified]
        provider_user_ids = await self.provider_users(wanted, caller)
        return [
            Participant(
                external_id=i.identity.external_id,
                groups=i.identity.groups,
                full_name=i.identity.full_name,
                language=i.entry.language,
                level=i.level,
                provider_user_id=provider_user_id,
            )
            for i, provider_user_id in zip(identified, provider_user_ids, strict=True)
        ]

    async def provider_user(self, external_id: str, level: Level, caller: Caller) -> str:
        """The provider user of one external id (`provider_users`)."""
        [user] = await self.provider_users([(external_id, level)], caller)
        return user

    async def provider_users(
        self, wanted: Sequence[tuple[str, Level]], caller: Caller
    ) -> list[str]:
        """The provider user of each (external id, level), created and mapped the first time.

        The new ones are created at the provider concurrently (creating a user is
        idempotent, so a failure undoes nothing), then mapped in one store write: one
        commit for them all, not one each on the request's critical path. A mapping a
        concurrent request wrote first wins.

        A provider user never stands for two external ids: one participant must not get
        another's link or credentials. Provider ids are derived injectively
        (`stable_user_id`); a mapping that shares one anyway (written by a version before
        that held, or by a provider that reuses ids) is refused, not used, and then no new
        mapping is written.
        """
        provider, users = self.video.name, self.store.users
        external_ids = [external_id for external_id, _ in wanted]
        found = await gather_all(*(users.find_user(provider, e) for e in external_ids))
        known = {e: user for e, user in zip(external_ids, found, strict=True) if user is not None}
        unknown = {e: level for e, level in wanted if e not in known}
        created = await gather_all(*(self.video.ensure_user(e, lv) for e, lv in unknown.items()))
        new = dict(zip(unknown, created, strict=True))
        chosen = {e: known[e] if e in known else new[e] for e in external_ids}
        holders = await gather_all(*(users.holders(provider, u) for u in chosen.values()))
        first_holder: dict[str, str] = {}  # within this request: a provider reusing ids
        for (external_id, user), held_by in zip(chosen.items(), holders, strict=True):
            shared = first_holder.setdefault(user, external_id) != external_id
            if shared or any(holder != external_id for holder in held_by):
                log.warning("user map: %s provider user %s stands for several ids", provider, user)
                raise Conflict(
                    f"Participant {external_id!r} cannot be given a {provider} user: the one "
                    "derived for it already stands for another user id. An operator must "
                    "correct the user map (docs/operations.md, Security).",
                    code="user_map_conflict",
                )
        stored = known | await users.add_users(provider, new, caller.id or ANONYMOUS)
        return [stored[e] for e in external_ids]


class _Once(Generic[T]):
    """Work a request does once, however many compare-and-set attempts its write takes."""

    def __init__(self, work: Callable[[], Awaitable[T]]) -> None:
        self._work = work
        self._done: list[T] = []

    async def result(self) -> T:
        if not self._done:
            self._done.append(await self._work())
        return self._done[0]


@dataclass(frozen=True)
class _Identified:
    entry: ParticipantEntry
    identity: Identity
    level: Level


def _event(
    name: str, record: Teleconsultation, caller: Caller | None = None, **fields: object
) -> None:
    """A change's event line: the teleconsultation's id, the caller's (when known), ids."""
    caller_id = caller.id if caller is not None else None
    logs.event(log, name, teleconsultationId=record.id, callerId=caller_id, **fields)


@asynccontextmanager
async def _in_time() -> AsyncIterator[None]:
    """A change's deadline (COMMIT_DEADLINE), rate-limit waits included: well inside the
    jobs' grace, so the reconciler never judges a room while its request may still write."""
    seconds = COMMIT_DEADLINE.total_seconds()
    try:
        async with asyncio.timeout(seconds):
            with outbound.deadline(seconds):  # rate-limit waits fit inside it too
                yield
    except TimeoutError:
        raise TooSlow(
            "The change did not complete in time; it may or may not have been applied. "
            "Read the teleconsultation before retrying."
        ) from None


def _counts(record: Teleconsultation) -> dict[str, object]:
    return {
        "participantsNumber": record.participants_number,
        "participantsKnown": len(record.participants),
    }


def require_caller(caller: Caller) -> str:
    """The caller's id, or 401 when the request does not say who is calling."""
    if caller.id is None:
        raise Unauthorized("The request does not say who is calling (see userIdPathInRequest).")
    return caller.id


def _too_much_contention() -> Conflict:
    return Conflict(
        "The teleconsultation kept changing while this request was applied; retry the request."
    )
