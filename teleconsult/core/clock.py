"""Time for the use cases: a clock they are given (tests freeze it), and the dates they write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_date(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as the original wrote dates."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    """A date as whole microseconds since 1970: exact (no float), and sortable as an integer."""
    delta = value.astimezone(UTC) - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)
