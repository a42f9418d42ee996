"""What a video provider's events do to a teleconsultation: pure rules, no I/O.

Who joined the call and when (`attend`), and who will not have joined in time
(`no_show`): kept apart from `domain` because only provider events, the events
sent out for them and the plugin surface's event names need them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from teleconsult.core.domain import (
    Admission,
    Attendance,
    Participant,
    Phase,
    Presence,
    Teleconsultation,
)

JOINED = "participant.joined"
LEFT = "participant.left"
CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
WAITING = "participant.waiting"
ADMITTED = "participant.admitted"
DECLINED = "participant.declined"
LOBBY_EVENT_TYPES = (WAITING, ADMITTED, DECLINED)
"""The lobby's moments: a knock, and the plus participant's decision on it."""
PROVIDER_EVENT_TYPES = (JOINED, LEFT, CALL_STARTED, CALL_ENDED, *LOBBY_EVENT_TYPES)
MAX_PRESENCES = 200
"""Stays kept per teleconsultation: a participant whose connection flaps cannot grow the
record without bound; later joins are ignored (and not announced)."""


def attend(
    record: Teleconsultation,
    kind: str,
    provider_user_id: str | None,
    at: datetime,
    by: str | None = None,
) -> Attendance | None:
    """The attendance after a provider event, or None when it changes nothing: a repeated
    event (providers retry), a user who is not a participant, a leave without a join."""
    attendance = record.attendance
    if kind in LOBBY_EVENT_TYPES:
        return _admission(record, kind, provider_user_id, at, by)
    if kind == CALL_STARTED:
        return None if attendance.call_started_at else replace(attendance, call_started_at=at)
    if kind == CALL_ENDED:  # whoever is still in leaves with the call
        if attendance.call_ended_at:
            return None
        closed = tuple(
            p if p.left_at else replace(p, left_at=max(at, p.joined_at))
            for p in attendance.presences
        )
        return replace(attendance, call_ended_at=at, presences=closed)
    if provider_user_id is None or not any(
        p.provider_user_id == provider_user_id for p in record.participants
    ):
        return None
    stays = list(attendance.presences)
    open_stay = next(
        (
            i
            for i, p in enumerate(stays)
            if p.provider_user_id == provider_user_id and not p.left_at
        ),
        None,
    )
    if kind == JOINED:
        if open_stay is not None or len(stays) >= MAX_PRESENCES:
            return None
        stays.append(Presence(provider_user_id, at))
    elif kind == LEFT:
        if open_stay is None:
            return None
        stays[open_stay] = replace(stays[open_stay], left_at=max(at, stays[open_stay].joined_at))
    else:
        return None
    return replace(attendance, presences=tuple(stays))


def no_show(
    record: Teleconsultation, after: timedelta
) -> tuple[datetime, tuple[Participant, ...]] | None:
    """When `call.no_show` is due (start plus NO_SHOW_AFTER_MS) and who will not have joined
    by then, as known now; None when no room exists or everyone joined in time."""
    if record.phase not in (Phase.ROOM_READY, Phase.ENDED):
        return None
    deadline = record.start_date + after
    absent = tuple(
        p
        for p in record.participants
        if (joined := record.attendance.first_joined(p.provider_user_id)) is None
        or joined > deadline
    )
    return (deadline, absent) if absent else None


def _admission(
    record: Teleconsultation, kind: str, provider_user_id: str | None, at: datetime, by: str | None
) -> Attendance | None:
    """A lobby moment kept on the record (so its webhook is written with it); a repeat, a
    stranger, or one past MAX_PRESENCES changes nothing."""
    attendance = record.attendance
    if provider_user_id is None or not any(
        p.provider_user_id == provider_user_id for p in record.participants
    ):
        return None
    moment = Admission(provider_user_id, kind, at, by)
    if moment in attendance.admissions or len(attendance.admissions) >= MAX_PRESENCES:
        return None
    return replace(attendance, admissions=(*attendance.admissions, moment))
