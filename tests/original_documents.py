"""Documents shaped as the original service writes them (docs/operations.md, "Coming from the
original service", lists the assumed shape): CRUD metadata, `bandyerRoomId`,
`participantsNumber`, `participants` as its usage page sends them plus the Kaleyra user and
link it stored, `teleconsultationState`, `startDate`, `endDate`; user-map entries with
`receivedUserId` (early versions: `auth0Id`) and `bandyerId`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

NOW = datetime(2030, 2, 22, 12, 0, tzinfo=UTC)
"""The tests' default "now" (tests.helpers.BEFORE_START)."""
SOON = datetime(2030, 2, 22, 12, 5, tzinfo=UTC)
"""A start five minutes away: inside a ten-minute immutable window, so locked."""
LATER = datetime(2030, 2, 22, 15, 30, tzinfo=UTC)
"""A start hours away: outside the window, so the teleconsultation can still change."""
CREATED = datetime(2030, 2, 1, 9, 0, tzinfo=UTC)
KALEYRA_HOST = "https://company.bandyer.com"
STATES = (
    None,
    "",
    "created",
    "scheduled",
    "waiting_for_participants",
    "room_ready",
    "ready",
    "active",
    "in_progress",
    "ended",
    "completed",
    "cancelled",
    "CANCELLED",
    "deleted",
)
"""Every `teleconsultationState` the original might have written (its docs say "the state of
the Room (if it's available ecc.)"); None: the field is missing."""


def oid(n: int) -> ObjectId:
    """The n-th id: ids shaped as the original's, in a known order."""
    return ObjectId(f"65a1b2c3d4e5f6a7b8c9{n:04x}")


def link(code: str) -> str:
    return f"{KALEYRA_HOST}/eu/direct-rest-call-handler/{code}"


def doctor(**extra: Any) -> dict[str, Any]:
    return {
        "userExternalId": "doctor-1",
        "groups": ["doctor"],
        "fullName": "Joe Smith",
        "language": "it",
        **extra,
    }


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "userExternalId": "patient-1",
        "groups": ["patient"],
        "fullName": "Jane Doe",
        "language": "it",
        **extra,
    }


def with_room(*participants: dict[str, Any]) -> list[dict[str, Any]]:
    """Participants of a room the original made: each with its Kaleyra user and link."""
    return [
        {**p, "userBandyerId": f"kaleyra-{p['userExternalId']}", "accessLinkURL": link(f"c-{i}")}
        for i, p in enumerate(participants)
    ]


def record(n: int, **fields: Any) -> dict[str, Any]:
    """A teleconsultation as the original stores it: every field its docs list."""
    start = fields.pop("start", LATER)
    document: dict[str, Any] = {
        "_id": oid(n),
        "__STATE__": "PUBLIC",
        "createdAt": CREATED,
        "updatedAt": CREATED + timedelta(minutes=n),
        "creatorId": "public",
        "updaterId": "public",
        "bandyerRoomId": None,
        "participantsNumber": 2,
        "participants": [],
        "teleconsultationState": "created",
        "startDate": start,
        "endDate": start + timedelta(hours=1),
    }
    document.update(fields)
    return document


def user(n: int, received: str, kaleyra_user: str, field: str = "receivedUserId") -> dict[str, Any]:
    return {
        "_id": oid(0x1000 + n),
        "__STATE__": "PUBLIC",
        "createdAt": CREATED,
        "updatedAt": CREATED,
        "creatorId": "public",
        "updaterId": "public",
        field: received,
        "bandyerId": kaleyra_user,
    }
