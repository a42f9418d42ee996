"""Use cases: create, update, add a participant, join, cancel.

Each use case reads the record, lets the domain decide, does the provider work,
and writes the record back with compare-and-set, together with the webhook
deliveries of the events it makes (`core.events`), in the same store write.
When another replica wrote first, the work is redone on the fresh record (a
bounded number of times) and the room made for the losing attempt is deleted,
so concurrent requests lose nothing (`_change`, the one compare-and-set loop). What a
change does to the room is a transition (`core.transitions`: planned, committed,
settled); who the participants are, `core.participants`.

Each change is logged as one event line (`observability.logs.event`) once its
write succeeded: never for an attempt that lost, never with a name or a link.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar

from teleconsult.core import domain, events, revocation
from teleconsult.core.clock import Clock, format_date, utc_now
from teleconsult.core.domain import (
    ANONYMOUS,
    Level,
    Participant,
    Privileges,
    RecordState,
    RoomPolicy,
    Teleconsultation,
    WritePolicy,
)
from teleconsult.core.events import Announcer
from teleconsult.core.joining import JoinInfo, join_info, join_request
from teleconsult.core.outbox import RoomJobs
from teleconsult.core.participants import ParticipantDirectory, ParticipantsInput
from teleconsult.core.schedule import ScheduleInput, scheduled
from teleconsult.core.transitions import (
    TOO_SLOW,
    Plan,
    RoomTransitions,
    plan_cancel,
    within_deadline,
)
from teleconsult.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
    VersionConflict,
)
from teleconsult.observability import logs, redaction
from teleconsult.providers.protocols import (
    Caller,
    IdentityProvider,
    ParticipantEntry,
    VideoProvider,
)
from teleconsult.store.base import Store
from teleconsult.store.documents import is_object_id, new_teleconsultation_id

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 10
"""Compare-and-set attempts before giving up with a 409; each lost attempt means another
request on the same teleconsultation succeeded, so this only runs out under heavy contention."""
CANCEL_TOO_SLOW = "Cancelling did not complete in time; it may or may not have been applied."


@dataclass(eq=False)
class TeleconsultationService:
    store: Store
    video: VideoProvider
    identity: IdentityProvider
    privileges: Privileges
    policy: RoomPolicy
    clock: Clock = utc_now
    background_groups: frozenset[str] = frozenset()
    write_policy: WritePolicy = domain.OPEN_WRITES
    announcer: Announcer = field(default_factory=Announcer)
    on_change: Callable[[str], None] = lambda _: None
    """Told the id of each record this replica wrote: wakes its waiting GETs."""
    jobs: RoomJobs = field(init=False)
    directory: ParticipantDirectory = field(init=False)
    transitions: RoomTransitions = field(init=False)

    def __post_init__(self) -> None:
        """The parts a use case hands its work to, sharing this service's providers and store."""
        store, video, clock = self.store, self.video, self.clock
        self.jobs = RoomJobs(store.outbox, video, clock)
        self.directory = ParticipantDirectory(self.identity, video, store.users, self.privileges)
        self.transitions = RoomTransitions(
            store.records,
            video,
            self.jobs,
            self.announcer,
            self.privileges,
            self.policy,
            clock,
            self.on_change,
        )

    # -- use cases ---------------------------------------------------------------------------

    async def create(
        self,
        participants: ParticipantsInput,
        schedule: ScheduleInput,
        caller: Caller,
        record_id: str | None = None,
    ) -> str:
        """A new teleconsultation; `record_id` (from `new_teleconsultation_id`) when the caller
        named it first (the FHIR interface claims an Appointment.identifier for it)."""
        start, end = self._scheduled(None, schedule, self.clock())
        self._check_input(participants)
        record_id = record_id or new_teleconsultation_id()

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

        identified = await self.directory.identified(participants, caller, check_plus=True)
        members = self.directory.with_provider_users(identified, caller)
        transitions = self.transitions
        if len(identified) < participants.number:  # no room yet
            plan = transitions.plan(None, record(await members), events.CREATED)
            async with within_deadline():
                await transitions.apply(plan, created)
            return record_id
        # Everyone is known and accepted, so a room will be created: its job is written
        # while the users are, not after them, and the deadline covers both (the job's
        # grace runs from its opening).
        async with within_deadline():
            room_name = transitions.room_name()
            creation, known = await self.jobs.open_during(record_id, members, room_name)
            plan = transitions.plan(None, record(known), events.CREATED)
            await transitions.apply(plan, created, creation)
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
            return tuple(await self.directory.participants(participants, caller, check_plus=True))

        replacements = _Once(replace_participants)

        async def change(current: Teleconsultation, now: datetime) -> Teleconsultation:
            self._refuse_if_locked(current, now)
            start, end = self._scheduled(current, schedule, now)
            number, members = current.participants_number, current.participants
            if participants is not None and participants.entries is None:
                number = participants.number  # a new count for the participants already known
                self._check_counts(number, [m.external_id for m in members])
                if len(members) == number:
                    domain.check_plus_rule([m.level for m in members])
            elif participants is not None:
                number, members = participants.number, await replacements.result()
                members = revocation.kept_credentials(current.participants, members)
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

        await self._change(teleconsultation_id, caller, change, self._plan(events.UPDATED), changed)

    async def add_participant(
        self, teleconsultation_id: str, entry: ParticipantEntry, caller: Caller
    ) -> None:
        newcomer = _Once(
            lambda: self.directory.participants(
                ParticipantsInput(1, (entry,)), caller, check_plus=False
            )
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

        plan = self._plan(events.PARTICIPANT_ADDED)
        await self._change(teleconsultation_id, caller, change, plan, added)

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
        # (a change is refused from the lock on, at its write: `RoomTransitions.commit`), while
        # one read before may be replaced, before the lock, while the read answers.
        now = self.clock()
        record = await self.load(teleconsultation_id)
        me = record.participant(caller_id)
        if me is None:
            raise Unauthorized("The caller is not a participant of this teleconsultation.")
        if me.blocked:
            raise Forbidden(revocation.BLOCKED, code="participant_blocked")
        link = None
        ended = record.phase is domain.Phase.ENDED
        if not ended and record.room is not None and domain.is_locked(record, self.policy, now):
            background = (
                use_background
                if use_background is not None
                else bool(self.background_groups & set(me.groups))
            )
            request = join_request(record, record.room, me, language, background, self.policy)
            link = self.video.join_link(request)
        redaction.sensitive([link, *(p.full_name for p in record.participants)])
        attendance = None
        if record.attendance != domain.NO_ATTENDANCE:
            attendance = events.attendance(record, self.clock(), self.announcer.no_show_after)
        return join_info(record, me, link, attendance, self.policy)

    async def cancel(self, teleconsultation_id: str, caller: Caller) -> None:
        """Trash the record, then delete its room (allowed even when locked).

        The record stops pointing to the room first, so no link to a room being
        deleted is ever handed out; the deletion is an outbox job written before the
        record changes, so a provider failure or a crash only delays it: the
        reconciler finishes it. Cancelling never fails because of the provider: the
        room's deletion comes after the deadline.
        """

        async def trash(current: Teleconsultation, _: datetime) -> Teleconsultation:
            return replace(current, state=RecordState.TRASH, room=None)

        def cancelled(before: Teleconsultation, _: Teleconsultation) -> None:
            deleting = before.room.provider_room_id if before.room else None
            _event("teleconsultation cancelled", before, caller, providerRoomId=deleting)

        await self._change(
            teleconsultation_id,
            caller,
            trash,
            plan_cancel,
            cancelled,
            too_slow=CANCEL_TOO_SLOW,
            settle_in_time=False,
        )

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

    def _scheduled(
        self, current: Teleconsultation | None, schedule: ScheduleInput, now: datetime
    ) -> tuple[datetime, datetime]:
        return scheduled(current, schedule, now, self.policy, self.video.limits)

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

    async def provider_user(self, external_id: str, level: Level, caller: Caller) -> str:
        """The provider user of one external id (`ParticipantDirectory.provider_users`)."""
        [user] = await self.directory.provider_users([(external_id, level)], caller)
        return user

    def _plan(self, kind: str) -> Callable[[Teleconsultation, Teleconsultation], Plan]:
        """How a change of `kind` plans its room: as its proposed record needs."""
        return partial(self.transitions.plan, kind=kind)

    async def _change(
        self,
        teleconsultation_id: str,
        caller: Caller,
        change: Callable[[Teleconsultation, datetime], Awaitable[Teleconsultation]],
        plan: Callable[[Teleconsultation, Teleconsultation], Plan],
        announce: Callable[[Teleconsultation, Teleconsultation], None],
        *,
        too_slow: str = TOO_SLOW,
        settle_in_time: bool = True,
        load: Callable[[str, Caller], Awaitable[Teleconsultation]] | None = None,
    ) -> None:
        """The compare-and-set loop of every change of a stored record: read it, apply
        `change`, plan its room, commit within the deadline, settle; redone on the fresh
        record when another request wrote first. `announce(before, written)` logs the one
        attempt whose write succeeded. Without `settle_in_time`, settling (deleting the
        room no longer needed) comes after the deadline, so it cannot fail the request. `load`
        reads the record (by default, for a caller who may change it)."""
        for _ in range(MAX_ATTEMPTS):
            current = await (load or self.load_for_change)(teleconsultation_id, caller)
            now = self.clock()
            proposed = replace(
                await change(current, now),
                version=current.version + 1,
                updated_at=now,
                updater_id=caller.id or ANONYMOUS,
            )
            try:
                async with within_deadline(too_slow):
                    committed = await self.transitions.commit(plan(current, proposed))
                    if settle_in_time:
                        await self.transitions.settle(committed, partial(announce, current))
            except VersionConflict:
                continue
            if not settle_in_time:
                await self.transitions.settle(committed, partial(announce, current))
            return
        raise _too_much_contention()


class _Once(Generic[T]):
    """Work a request does once, however many compare-and-set attempts its write takes."""

    def __init__(self, work: Callable[[], Awaitable[T]]) -> None:
        self._work = work
        self._done: list[T] = []

    async def result(self) -> T:
        if not self._done:
            self._done.append(await self._work())
        return self._done[0]


def _event(
    name: str, record: Teleconsultation, caller: Caller | None = None, **fields: object
) -> None:
    """A change's event line: the teleconsultation's id, the caller's (when known), ids."""
    caller_id = caller.id if caller is not None else None
    logs.event(log, name, teleconsultationId=record.id, callerId=caller_id, **fields)


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
