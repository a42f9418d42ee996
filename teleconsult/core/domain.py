"""The rules of a teleconsultation, as pure functions over plain records: no I/O.

Roles and the plus rule, participant counts, duration, the immutable window and
the room a teleconsultation needs all live here, so they can be read (and
tested) in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from teleconsult.core.clock import format_date
from teleconsult.errors import InvalidRequest, NoPlusUser

TOOLS: tuple[str, ...] = (
    "chat",
    "screen_sharing",
    "file_upload",
    "whiteboard",
    "snapshot",
    "live_edit",
    "live_pointer",
    "present_to_everyone",
)
"""The in-call tools a privilege level can switch on, as Kaleyra names them."""

MIN_DURATION_SECONDS = 300
"""Our own floor for a room with a duration: shorter calls are almost always a mistake."""

RECORDING_TYPES: tuple[str, ...] = ("none", "manual", "automatic")


class Level(StrEnum):
    """A participant's privilege level; `plus` participants administer the room."""

    BASIC = "basic"
    PLUS = "plus"


class RecordState(StrEnum):
    """CRUD-compatible `__STATE__`: a cancelled teleconsultation is trashed, never removed."""

    PUBLIC = "PUBLIC"
    TRASH = "TRASH"


class Phase(StrEnum):
    """Where a teleconsultation stands, stored as `teleconsultationState`."""

    WAITING_FOR_PARTICIPANTS = "waiting_for_participants"
    ROOM_READY = "room_ready"
    ENDED = "ended"
    """The provider reported that the call ended (for everyone): no link is handed out."""
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Privilege:
    groups: frozenset[str]
    tools: frozenset[str]


@dataclass(frozen=True)
class Privileges:
    basic: Privilege
    plus: Privilege

    def level_of(self, groups: Iterable[str]) -> Level | None:
        """The highest level any of `groups` grants, or None when none matches."""
        groups = set(groups)
        if groups & self.plus.groups:
            return Level.PLUS
        if groups & self.basic.groups:
            return Level.BASIC
        return None

    def tools_of(self, level: Level) -> frozenset[str]:
        return self.plus.tools if level is Level.PLUS else self.basic.tools


@dataclass(frozen=True)
class ProviderLimits:
    """What a video provider accepts; the core validates requests against it."""

    min_participants: int = 2
    max_participants: int = 25
    min_duration_seconds: int = 60
    max_duration_seconds: int = 24 * 3600

    def refusal(self, spec: RoomSpec) -> str | None:
        """Why a provider with these limits would not make `spec`'s room, or None.

        The core never asks for such a room; a provider with no vendor to check rooms for
        it (one that only names rooms and signs tokens) checks them with this, so that every
        provider refuses the same rooms in the same words.
        """
        count = len(spec.participants)
        if not self.min_participants <= count <= self.max_participants:
            return (
                f"a room needs {self.min_participants} to {self.max_participants} "
                f"participants, not {count}"
            )
        if not any(participant.is_admin for participant in spec.participants):
            return "a room needs at least one admin"
        duration = spec.duration_seconds
        if duration is not None and not (
            self.min_duration_seconds <= duration <= self.max_duration_seconds
        ):
            return f"duration {duration}s is out of bounds"
        return None


@dataclass(frozen=True)
class Participant:
    external_id: str
    groups: tuple[str, ...]
    full_name: str = field(repr=False)
    """Health data: kept out of reprs, and so out of logs."""
    language: str | None
    level: Level
    provider_user_id: str
    link_generation: int = 0
    """Raised by each revocation: a link of an earlier generation opens nothing (issue 30)."""
    blocked: bool = False
    """Removed from the call and kept out: GET answers 403 `participant_blocked`."""


@dataclass(frozen=True)
class RoomParticipant:
    provider_user_id: str
    is_admin: bool
    tools: tuple[str, ...]
    """The enabled tools, in the order of `TOOLS`."""


@dataclass(frozen=True)
class RoomSpec:
    """Everything a provider room is made of: two equal specs need the same room."""

    participants: tuple[RoomParticipant, ...]
    duration_seconds: int | None
    live: bool
    recording: str


@dataclass(frozen=True)
class Room:
    provider_room_id: str
    spec: RoomSpec
    links: Mapping[str, str] = field(repr=False)
    """One access link per provider user id. Links are bearer credentials: never log them."""


@dataclass(frozen=True)
class Presence:
    """One stay of a participant in the call, as the video provider reported it."""

    provider_user_id: str
    joined_at: datetime
    left_at: datetime | None = None


@dataclass(frozen=True)
class Admission:
    """A lobby moment of a participant: `waiting` (knocked), `admitted` or `declined` (`by`:
    the provider user id of the plus participant who decided)."""

    provider_user_id: str
    kind: str
    at: datetime
    by: str | None = None


@dataclass(frozen=True)
class Attendance:
    """Who joined the call when, and when it started and ended (provider events)."""

    call_started_at: datetime | None = None
    call_ended_at: datetime | None = None
    presences: tuple[Presence, ...] = ()
    admissions: tuple[Admission, ...] = ()
    """The lobby's knocks and decisions, in order (the webrtc provider's `CALL_PAGE_LOBBY`)."""

    def first_joined(self, provider_user_id: str) -> datetime | None:
        return min(
            (p.joined_at for p in self.presences if p.provider_user_id == provider_user_id),
            default=None,
        )


NO_ATTENDANCE = Attendance()


@dataclass(frozen=True)
class Teleconsultation:
    id: str
    participants_number: int
    participants: tuple[Participant, ...]
    start_date: datetime
    end_date: datetime
    room: Room | None
    state: RecordState
    version: int
    created_at: datetime
    updated_at: datetime
    creator_id: str
    updater_id: str
    attendance: Attendance = NO_ATTENDANCE

    @property
    def complete(self) -> bool:
        return len(self.participants) == self.participants_number

    @property
    def phase(self) -> Phase:
        if self.state is RecordState.TRASH:
            return Phase.CANCELLED
        if self.room is None:
            return Phase.WAITING_FOR_PARTICIPANTS
        return Phase.ENDED if self.attendance.call_ended_at else Phase.ROOM_READY

    def participant(self, external_id: str) -> Participant | None:
        return next((p for p in self.participants if p.external_id == external_id), None)


@dataclass(frozen=True)
class RoomPolicy:
    """The settings that shape every room: from the environment, fixed at start."""

    unlimited: bool
    live: bool
    recording: str
    immutable_period: timedelta


@dataclass(frozen=True)
class WritePolicy:
    """Who may change a teleconsultation (issue 12): from the environment, fixed at start."""

    admin_groups: frozenset[str]
    """Members may change any teleconsultation (ADMIN_GROUPS)."""
    allow_anonymous: bool
    """Whether callers who do not say who they are may write (ALLOW_ANONYMOUS_WRITES)."""


OPEN_WRITES = WritePolicy(admin_groups=frozenset(), allow_anonymous=True)
"""The original's behaviour: anyone who may call may write."""

ANONYMOUS = "public"
"""`creatorId` / `updaterId` of a change whose caller could not be identified (as the CRUD does)."""


ANONYMOUS_WRITES_REFUSED = (
    "This service accepts changes only from callers who say who they are "
    "(ALLOW_ANONYMOUS_WRITES=false); see userIdPathInRequest."
)
NOT_AN_OWNER = (
    "Only the teleconsultation's creator, its plus participants and members of "
    "ADMIN_GROUPS may change it."
)


def may_change(
    record: Teleconsultation,
    caller_id: str | None,
    caller_groups: frozenset[str],
    policy: WritePolicy,
) -> bool:
    """A teleconsultation belongs to its creator and its plus participants; admins may change
    any. An unidentified caller may change any only where the policy allows anonymous writes
    (the original's behaviour)."""
    if caller_id is None:
        return policy.allow_anonymous
    if caller_groups & policy.admin_groups:
        return True
    if caller_id == record.creator_id and record.creator_id != ANONYMOUS:
        return True
    return any(p.external_id == caller_id and p.level is Level.PLUS for p in record.participants)


def level_of_participant(
    privileges: Privileges, external_id: str, groups: Sequence[str], path: str
) -> Level:
    """The participant's level; a 400 at `path` (where the request named them) without one."""
    level = privileges.level_of(groups)
    if level is None:
        known = sorted(privileges.basic.groups | privileges.plus.groups)
        raise InvalidRequest(
            f"Participant {external_id!r} belongs to none of the configured groups "
            f"({', '.join(known)}); got {list(groups)}.",
            path=path,
        )
    return level


def check_participant_counts(
    number: int, external_ids: Sequence[str], limits: ProviderLimits
) -> None:
    """Counts and uniqueness: the rules that hold whether or not everyone is known."""
    if not limits.min_participants <= number <= limits.max_participants:
        raise InvalidRequest(
            f"participants.number must be between {limits.min_participants} and "
            f"{limits.max_participants} for this video provider; got {number}.",
            path="participants.number",
        )
    if len(external_ids) > number:
        raise InvalidRequest(
            f"{len(external_ids)} participants were given but participants.number is {number}.",
            path="participants.data",
        )
    seen: set[str] = set()
    for external_id in external_ids:
        if external_id in seen:
            raise InvalidRequest(
                f"Participant {external_id!r} appears more than once.", path="participants.data"
            )
        seen.add(external_id)


def check_plus_rule(levels: Iterable[Level]) -> None:
    """Once everyone is known, somebody must be able to run the call."""
    if Level.PLUS not in set(levels):
        raise NoPlusUser()


def check_schedule(
    start: datetime, end: datetime, now: datetime, policy: RoomPolicy, limits: ProviderLimits
) -> None:
    """The dates a teleconsultation may have. A start already past is fine (the call is
    on); an end already past is not: every link handed out would be expired at once."""
    if end <= start:
        raise InvalidRequest("end_date must be after start_date.", path="end_date")
    if end <= now:
        raise InvalidRequest(
            f"end_date {format_date(end)} is already past (the service's time is "
            f"{format_date(now)}): a teleconsultation must end in the future.",
            path="end_date",
        )
    if policy.unlimited:
        return
    seconds = duration_seconds(start, end)
    floor = max(MIN_DURATION_SECONDS, limits.min_duration_seconds)
    if seconds < floor:
        raise InvalidRequest(
            f"A teleconsultation must last at least {floor} seconds; this one lasts {seconds}.",
            path="end_date",
        )
    if seconds > limits.max_duration_seconds:
        raise InvalidRequest(
            f"A teleconsultation may last at most {limits.max_duration_seconds} seconds with "
            f"this video provider; this one lasts {seconds}.",
            path="end_date",
        )


def duration_seconds(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds())


def lock_time(teleconsultation: Teleconsultation, policy: RoomPolicy) -> datetime:
    return teleconsultation.start_date - policy.immutable_period


def locks_at(teleconsultation: Teleconsultation, policy: RoomPolicy) -> datetime | None:
    """When the teleconsultation locks: its lock time once everyone is known; None while
    someone is unknown (it has no room, so no link is out)."""
    return lock_time(teleconsultation, policy) if teleconsultation.complete else None


def is_locked(teleconsultation: Teleconsultation, policy: RoomPolicy, now: datetime) -> bool:
    """Locked: everyone is known and the immutable window has begun, so the room is final."""
    at = locks_at(teleconsultation, policy)
    return at is not None and now >= at


def changed_fields(before: Teleconsultation, after: Teleconsultation) -> list[str]:
    """What a change changed, by the API's names (`participants.number`, `participants`,
    `start_date`, `end_date`): for the event line, which never holds the values."""
    changed = []
    if before.participants_number != after.participants_number:
        changed.append("participants.number")
    if before.participants != after.participants:
        changed.append("participants")
    if before.start_date != after.start_date:
        changed.append("start_date")
    if before.end_date != after.end_date:
        changed.append("end_date")
    return changed


def room_spec(
    teleconsultation: Teleconsultation, privileges: Privileges, policy: RoomPolicy
) -> RoomSpec | None:
    """The room this teleconsultation needs, or None while someone is still unknown."""
    if not teleconsultation.complete:
        return None
    participants = tuple(
        RoomParticipant(
            provider_user_id=p.provider_user_id,
            is_admin=p.level is Level.PLUS,
            tools=tuple(t for t in TOOLS if t in privileges.tools_of(p.level)),
        )
        for p in teleconsultation.participants
    )
    duration = (
        None
        if policy.unlimited
        else duration_seconds(teleconsultation.start_date, teleconsultation.end_date)
    )
    return RoomSpec(
        participants=participants,
        duration_seconds=duration,
        live=policy.live,
        recording=policy.recording,
    )
