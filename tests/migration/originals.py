"""Documents shaped as the original service writes them (docs/operations.md, "Coming from the
original service", lists the assumed shape): CRUD metadata, `bandyerRoomId`,
`participantsNumber`, `participants` as its usage page sends them plus the Kaleyra user and
link it stored, `teleconsultationState`, `startDate`, `endDate`; user-map entries with
`receivedUserId` (early versions: `auth0Id`) and `bandyerId`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.migration.command import prepared_migrator
from teleconsult.migration.runner import Options, Summary
from tests.fakes.kaleyra import FakeKaleyra
from tests.helpers import bandyer_env

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


RECORDS, USERS = "tc_crud", "user_map_crud"
RUNBOOK = {
    # The original's collections, rooms and room settings (docs/operations.md, the runbook).
    "TELECONSULTATIONS_CRUD_NAME": RECORDS,
    "USER_ID_MAP_CRUD_NAME": USERS,
    "IMMUTABLE_PERIOD_MS": str(10 * 60 * 1000),
    "UNLIMITED_TELECONSULTATION": "true",
    "LIVE_TELECONSULTATION": "true",
    "ALLOW_ANONYMOUS_WRITES": "true",
}
Hook = Callable[[Mapping[str, Any]], Awaitable[None]]


def environ(kaleyra_url: str, **extra: str) -> dict[str, str]:
    return {
        "STORE_URL": "mongodb://127.0.0.1:9/original",
        **bandyer_env(kaleyra_url),
        **RUNBOOK,
        **extra,
    }


async def migrate(
    database: Any, kaleyra_url: str, options: Options, *, hook: Hook | None = None, **extra: str
) -> Summary:
    env = environ(kaleyra_url, **extra)
    settings = Settings.from_environ(env)
    config = load_config(settings.service.config_path)
    async with await prepared_migrator(database, settings, config, env, options) as migrator:
        migrator.before_write = hook
        return await migrator.run()


APPLY = Options(apply=True, batch_size=2)
DRY = Options(apply=False, batch_size=2)


async def seed(database: Any, kaleyra: FakeKaleyra) -> None:
    """The original's data: users (one broken, one twice), teleconsultations of every kind."""
    await database[USERS].insert_many(
        [
            user(1, "doctor-1", "kaleyra-doctor-1"),
            user(2, "patient-1", "kaleyra-patient-1", field="auth0Id"),
            {**user(3, "broken", "kaleyra-x"), "bandyerId": None},
            user(4, "doctor-1", "kaleyra-other"),
        ]
    )
    optional = record(5, participants=[{**patient(), "language": None}])
    for name in ("teleconsultationState", "endDate", "creatorId", "updaterId"):
        del optional[name]
    optional["duration"] = 3600
    await database[RECORDS].insert_many(
        [
            record(1, start=SOON, bandyerRoomId="room_locked", participants=with_room(doctor(), patient()), teleconsultationState="active"),
            record(2, bandyerRoomId="room_future", participants=with_room(doctor(), patient()), teleconsultationState="ready"),
            record(3, participants=[doctor()], teleconsultationState="waiting"),
            record(4, __STATE__="TRASH", bandyerRoomId="room_gone", participants=with_room(doctor(), patient()), teleconsultationState="cancelled"),
            optional,
            record(6, participants=[doctor()], startDate="tomorrow"),
            record(7, participants=[doctor(groups=["nurse"])]),
            record(8, participants=[{**patient(), "userExternalId": "stranger"}]),
            record(9, bandyerRoomId="room_half", participants=[*with_room(doctor()), patient()]),
        ]
    )  # fmt: skip
    for n, room_id in ((1, "room_locked"), (2, "room_future"), (4, "room_gone")):
        kaleyra.users.update({"kaleyra-doctor-1": "plus", "kaleyra-patient-1": "basic"})
        kaleyra.rooms[room_id] = {"request": {}, "details": room_details(n)}
        kaleyra.uploads[room_id] = []


def room_details(n: int) -> dict[str, Any]:
    return {
        "recording": "none",
        "recording_status": "stopped",
        "call_type": "audio_video",
        "description": None,
        "status": "pending",
        "disabled": False,
        "creation_date": f"2030-02-0{n}T09:00:00+00:00",
        "duration": None,
        "duration_used": 0,
        "live": True,
    }


def ids(*numbers: int) -> list[str]:
    return [str(oid(n)) for n in numbers]


FAILED_USERS = {
    "cannot_migrate:duplicate_user_map_entry": 1,
    "cannot_migrate:malformed_record": 1,
}
FAILED_RECORDS = {
    "cannot_migrate:malformed_dates": 1,
    "cannot_migrate:missing_user_map_entry": 1,
    "cannot_migrate:room_without_links": 1,
    "cannot_migrate:unknown_groups": 1,
}
FAILED_SAMPLES = {
    "cannot_migrate:malformed_dates": ids(6),
    "cannot_migrate:unknown_groups": ids(7),
    "cannot_migrate:missing_user_map_entry": ids(8),
    "cannot_migrate:room_without_links": ids(9),
}


async def snapshot(database: Any) -> list[dict[str, Any]]:
    return [d for c in (RECORDS, USERS) async for d in database[c].find({}, sort=[("_id", 1)])]
