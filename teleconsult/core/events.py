"""Which events a change makes, and what they say: pure functions, no I/O.

A change's events are written in the same store write as the change itself
(a `RecordWrite` carries them to the store), so an event is never lost
and never announces a change that did not happen. Each event is fanned out to
the webhook endpoints whose filter takes its type, as one `Delivery` per
endpoint, which the deliverer (`core.webhooks`) sends.

Ids are stable: `evt_<teleconsultation>_<version>_<n>`, from the record version
the change wrote, so a retry of a delivery carries the same `webhook-id`. The
time-based `links.available` has one id per teleconsultation: each change that
affects it writes it again (due at the new lock time) or withdraws it, and the
store keeps the newest version's (see `store.base.Delivery`). Payloads carry
ids, states, times and provider user ids, never names or join links: health
data and bearer credentials stay in the service, and receivers call back for
them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from teleconsult.core import attendance_rules, domain, revocation
from teleconsult.core.clock import format_date
from teleconsult.core.domain import RoomPolicy, Teleconsultation
from teleconsult.store.base import Delivery, DeliveryStatus

CREATED = "teleconsultation.created"
UPDATED = "teleconsultation.updated"
PARTICIPANT_ADDED = "participant.added"
ROOM_CREATED = "room.created"
ROOM_REPLACED = "room.replaced"
LINKS_AVAILABLE = "links.available"
CANCELLED = "teleconsultation.cancelled"
PARTICIPANT_JOINED = attendance_rules.JOINED
PARTICIPANT_LEFT = attendance_rules.LEFT
CALL_STARTED = attendance_rules.CALL_STARTED
CALL_ENDED = attendance_rules.CALL_ENDED
PARTICIPANT_WAITING = attendance_rules.WAITING
PARTICIPANT_ADMITTED = attendance_rules.ADMITTED
PARTICIPANT_DECLINED = attendance_rules.DECLINED
NO_SHOW = "call.no_show"
LINK_REVOKED = revocation.LINK_REVOKED
PARTICIPANT_REMOVED = revocation.REMOVED
PARTICIPANT_UNBLOCKED = revocation.UNBLOCKED
EVENT_TYPES: tuple[str, ...] = (
    CREATED,
    UPDATED,
    PARTICIPANT_ADDED,
    ROOM_CREATED,
    ROOM_REPLACED,
    LINKS_AVAILABLE,
    CANCELLED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    CALL_STARTED,
    CALL_ENDED,
    NO_SHOW,
    PARTICIPANT_WAITING,
    PARTICIPANT_ADMITTED,
    PARTICIPANT_DECLINED,
    LINK_REVOKED,
    PARTICIPANT_REMOVED,
    PARTICIPANT_UNBLOCKED,
)
"""Every type an endpoint's filter may name."""
PER_VERSION = 10
"""Events one change may write: `seq` is `version * PER_VERSION + n`, so a teleconsultation's
events sort in the order its changes wrote them."""


@dataclass(frozen=True)
class Event:
    """One thing that happened to a teleconsultation (or, withdrawn, that no longer will)."""

    id: str
    type: str
    teleconsultation_id: str
    version: int
    """The record version whose write made (or last moved) it."""
    seq: int
    due_at: datetime
    """When it happened; for `links.available`, when it will."""
    data: dict[str, Any]
    withdrawn: bool = False
    """A `links.available` that will not happen after all (the room went, or the
    teleconsultation was cancelled): pending deliveries of it are dropped."""

    @property
    def payload(self) -> dict[str, Any]:
        """The body a receiver gets, in the Standard Webhooks payload structure."""
        return {"type": self.type, "timestamp": format_date(self.due_at), "data": self.data}


@dataclass(frozen=True)
class EndpointFilter:
    """A webhook endpoint as the outbox sees it: its name and the types it takes."""

    name: str
    types: frozenset[str]


SCHEDULED = {LINKS_AVAILABLE: "links", NO_SHOW: "no_show"}
"""The time-based events, with their one id per teleconsultation: a later change moves or
withdraws them."""


def events_of_change(
    kind: str,
    before: Teleconsultation | None,
    after: Teleconsultation,
    policy: RoomPolicy,
    now: datetime,
    no_show_after: timedelta = timedelta(minutes=10),
    **about: Any,
) -> list[Event]:
    """The events of one write: `kind` (created, updated, participant added, cancelled, or a
    provider event with `about` it), then what happened to the room, then where
    `links.available` and `call.no_show` stand."""
    if before is not None:  # a replica whose clock is behind still orders them after
        now = max(now, before.updated_at)
    events: list[Event] = []

    def add(event_type: str, due_at: datetime = now, withdrawn: bool = False, **extra: Any) -> None:
        n = len(events)
        suffix = SCHEDULED.get(event_type, f"{after.version}_{n}")
        events.append(
            Event(
                id=f"evt_{after.id}_{suffix}",
                type=event_type,
                teleconsultation_id=after.id,
                version=after.version,
                seq=after.version * PER_VERSION + n,
                due_at=due_at,
                data={} if withdrawn else {**snapshot(after), **extra},
                withdrawn=withdrawn,
            )
        )

    if kind == PARTICIPANT_ADDED and before is not None:
        [newcomer] = [p for p in after.participants if before.participant(p.external_id) is None]
        add(kind, participant=participant_data(newcomer))
    elif kind in revocation.KINDS and before is not None:
        whom = revocation.subject(before, after)
        add(kind, participant=participant_data(whom), by=after.updater_id)
    else:
        add(kind, **about)
    # Provider events and credential changes leave the room and the dates be.
    if kind not in attendance_rules.PROVIDER_EVENT_TYPES and kind not in revocation.KINDS:
        _room_events(add, before, after, policy, now)
    if kind in revocation.KINDS:  # the same people, dates and attendance: no-show unmoved
        return events
    was = attendance_rules.no_show(before, no_show_after) if before is not None else None
    will = attendance_rules.no_show(after, no_show_after)
    if will is not None and will != was:
        deadline, absent = will
        add(
            NO_SHOW,
            due_at=max(deadline, now),
            noShowAt=format_date(deadline),
            absent=[participant_data(p) for p in absent],
        )
    elif will is None and was is not None:
        add(NO_SHOW, withdrawn=True)
    return events


def _room_events(
    add: Callable[..., None],
    before: Teleconsultation | None,
    after: Teleconsultation,
    policy: RoomPolicy,
    now: datetime,
) -> None:
    """What happened to the room, then where `links.available` stands."""
    old_room = before.room if before is not None else None
    if after.room is not None and old_room is None:
        add(ROOM_CREATED)
    elif (
        after.room is not None
        and old_room is not None
        and after.room.provider_room_id != old_room.provider_room_id
    ):
        add(ROOM_REPLACED, previousProviderRoomId=old_room.provider_room_id)
    if after.room is not None and after.phase is domain.Phase.ROOM_READY:
        opens = domain.lock_time(after, policy)
        # Never before the change that scheduled it: it follows that change's events.
        add(LINKS_AVAILABLE, due_at=max(opens, now), availableAt=format_date(opens))
    elif old_room is not None:
        add(LINKS_AVAILABLE, withdrawn=True)


def snapshot(record: Teleconsultation) -> dict[str, Any]:
    """What every event says of its teleconsultation: ids, state, times, provider users."""
    return {
        "teleconsultationId": record.id,
        "version": record.version,
        "state": record.phase.value,
        "startDate": format_date(record.start_date),
        "endDate": format_date(record.end_date),
        "participantsNumber": record.participants_number,
        "participants": [participant_data(p) for p in record.participants],
        "providerRoomId": record.room.provider_room_id if record.room else None,
        "updatedAt": format_date(record.updated_at),
    }


def attendance(record: Teleconsultation, now: datetime, no_show_after: timedelta) -> dict[str, Any]:
    """Who joined the call when (GET's `details.attendance`): provider user ids and times;
    `noShow` lists who had not joined by the start plus NO_SHOW_AFTER_MS, once it passed."""
    known = record.attendance
    missing = attendance_rules.no_show(record, no_show_after)
    return {
        "callStartedAt": _date(known.call_started_at),
        "callEndedAt": _date(known.call_ended_at),
        "presences": [
            {
                "bandyerUserId": p.provider_user_id,
                "joinedAt": format_date(p.joined_at),
                "leftAt": _date(p.left_at),
            }
            for p in known.presences
        ],
        "noShow": [p.provider_user_id for p in missing[1]]
        if missing is not None and missing[0] <= now
        else [],
    }


def _date(value: datetime | None) -> str | None:
    return None if value is None else format_date(value)


def participant_data(participant: domain.Participant) -> dict[str, Any]:
    return {
        "userExternalId": participant.external_id,
        "providerUserId": participant.provider_user_id,
        "level": participant.level.value,
    }


def deliveries(
    events: Sequence[Event], endpoints: Sequence[EndpointFilter], max_age: timedelta
) -> tuple[Delivery, ...]:
    """One delivery per event and endpoint that takes its type; a withdrawn event becomes a
    dropped delivery, which ends a pending one of the same id."""
    return tuple(
        Delivery(
            id=delivery_id(endpoint.name, event.id),
            event_id=event.id,
            endpoint=endpoint.name,
            teleconsultation_id=event.teleconsultation_id,
            type=event.type,
            payload={} if event.withdrawn else event.payload,
            due_at=event.due_at,
            seq=event.seq,
            version=event.version,
            status=DeliveryStatus.DROPPED if event.withdrawn else DeliveryStatus.PENDING,
            next_at=event.due_at,
            deadline=event.due_at + max_age,
            finished_at=event.due_at if event.withdrawn else None,
        )
        for event in events
        for endpoint in endpoints
        if event.type in endpoint.types
    )


def delivery_id(endpoint: str, event_id: str) -> str:
    """A delivery is an event for one endpoint: `<endpoint>.<event id>`."""
    return f"{endpoint}.{event_id}"


class Announcer:
    """What the use cases ask: the deliveries a change's write carries, for the endpoints
    configured (none: nothing is written), and a word once they are written."""

    def __init__(
        self,
        endpoints: Sequence[EndpointFilter] = (),
        policy: RoomPolicy | None = None,
        max_age: timedelta = timedelta(days=1),
        on_written: Callable[[], None] = lambda: None,
        no_show_after: timedelta = timedelta(minutes=10),
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.policy = policy
        self.max_age = max_age
        self.no_show_after = no_show_after
        self.on_written = on_written
        """Wakes this replica's deliverer: sooner than its next look at the store."""

    def deliveries(
        self,
        kind: str,
        before: Teleconsultation | None,
        after: Teleconsultation,
        now: datetime | None = None,
        **about: Any,
    ) -> tuple[Delivery, ...]:
        """`now` is the write's time, `after.updated_at` unless the write keeps it (a
        provider event); `about` is what a provider event adds to the payload."""
        if not self.endpoints or self.policy is None:
            return ()
        events = events_of_change(
            kind, before, after, self.policy, now or after.updated_at, self.no_show_after, **about
        )
        return deliveries(events, self.endpoints, self.max_age)
