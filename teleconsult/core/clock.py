"""Time for the use cases: a clock they are given (tests freeze it), and the dates they write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_date(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as the original wrote dates."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
