"""When a teleconsultation starts and ends: the dates a request gives, applied to the record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from teleconsult.core import domain
from teleconsult.core.domain import ProviderLimits, RoomPolicy, Teleconsultation
from teleconsult.errors import InvalidRequest


@dataclass(frozen=True)
class ScheduleInput:
    start_date: datetime | None = None
    end_date: datetime | None = None
    duration_in_seconds: int | None = None


def scheduled(
    current: Teleconsultation | None,
    schedule: ScheduleInput,
    now: datetime,
    policy: RoomPolicy,
    limits: ProviderLimits,
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
    domain.check_schedule(start, end, now, policy, limits)
    return start, end
