"""What the contract's files share: a record to store, the time they store it at."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from teleconsult.core.domain import Level, Participant, RecordState, Teleconsultation
from teleconsult.store import Store
from teleconsult.store.documents import new_object_id

Opener = Callable[[], Awaitable[Store]]
NOW = datetime(2030, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)  # BSON dates keep milliseconds


def record(**changes: Any) -> Teleconsultation:
    base = Teleconsultation(
        id=new_object_id(),
        participants_number=2,
        participants=(
            Participant("doctor-1", ("doctor",), "Joe Smith", "it", Level.PLUS, "doctor-1"),
        ),
        start_date=NOW + timedelta(days=1),
        end_date=NOW + timedelta(days=1, hours=1),
        room=None,
        state=RecordState.PUBLIC,
        version=1,
        created_at=NOW,
        updated_at=NOW,
        creator_id="creator",
        updater_id="creator",
    )
    return replace(base, **changes)
