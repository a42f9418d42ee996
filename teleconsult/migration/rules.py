"""How one of the original's documents becomes one of ours: pure functions, no I/O.

The original's shape is what its docs describe (docs/operations.md, "Coming from the
original service", writes the assumptions down): a teleconsultation carries the CRUD
metadata, `bandyerRoomId`, `participantsNumber`, `participants`, `teleconsultationState`,
`startDate`, `endDate` (and `duration` in early versions); a participant `userExternalId`,
`groups` (or `group`), `fullName`, `language`, its Kaleyra user (`bandyerId`,
`userBandyerId` or `bandyerUserId`) and its Kaleyra link `accessLinkURL`; a user-map entry
`receivedUserId` (early versions: `auth0Id`) and `bandyerId`. Conversion adds our fields
and keeps the original's beside them; a field whose value it replaces keeps the original
value under `migration.original`, so the original can be pointed at the data again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from teleconsult.core.domain import (
    Participant,
    Phase,
    Privileges,
    RecordState,
    Room,
    RoomPolicy,
    Teleconsultation,
    room_spec,
)
from teleconsult.providers.protocols import Identity, ParticipantEntry
from teleconsult.store.documents import as_datetime, to_document

PROVIDER = "bandyer"
"""The original's only video provider: its rooms and users are Kaleyra's."""
PROVIDER_USER_FIELDS = ("bandyerId", "userBandyerId", "bandyerUserId")
"""Where a stored participant of the original may name its Kaleyra user (its docs use each)."""
LINK_FIELD = "accessLinkURL"
MIGRATION_FIELD = "migration"
"""Our note on a converted document: when, at which version, from which `updatedAt`, and the
original values of the fields conversion replaced."""
REPLACED_FIELDS = (
    "teleconsultationState",
    "participants",
    "startDate",
    "endDate",
    "createdAt",
    "updatedAt",
)
"""The original's fields conversion may rewrite (every other one it leaves as it was)."""


class Reason(StrEnum):
    """Why a document cannot be migrated (the report's words)."""

    MALFORMED_RECORD = "malformed_record"
    MALFORMED_DATES = "malformed_dates"
    UNKNOWN_GROUPS = "unknown_groups"
    IDENTITY_REFUSED = "identity_refused"
    IDENTITY_PROVIDER_FAILED = "identity_provider_failed"
    MISSING_USER_MAP_ENTRY = "missing_user_map_entry"
    ROOM_WITHOUT_LINKS = "room_without_links"
    DUPLICATE_USER_MAP_ENTRY = "duplicate_user_map_entry"
    CHANGED_DURING_RUN = "changed_during_run"


class CannotMigrate(Exception):
    """`detail` names fields and positions only: never a name, an id of a person or a link."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class Status(StrEnum):
    """Where a document stands before this run."""

    ORIGINAL = "original"
    """Never converted: the original's document."""
    CHANGED_BY_ORIGINAL = "changed_by_original"
    """Converted, then written by the original (its `updatedAt` moved, our `version` did not)."""
    MIGRATED = "migrated"
    """Converted and unchanged since, or teleconsult's own."""


@dataclass(frozen=True)
class OriginalParticipant:
    external_id: str
    groups: tuple[str, ...] | None
    full_name: str | None = field(repr=False)
    language: str | None
    provider_user_id: str | None
    link: str | None = field(repr=False)
    stored: Mapping[str, Any] = field(repr=False)
    """The entry as stored, kept whole beside our fields."""


@dataclass(frozen=True)
class OriginalRecord:
    id: str
    state: RecordState
    number: int
    participants: tuple[OriginalParticipant, ...]
    start: datetime
    end: datetime
    room_id: str | None
    created_at: datetime
    updated_at: datetime
    creator_id: str
    updater_id: str
    teleconsultation_state: Any
    """The original's own value (any string), kept under `migration.original`."""


def record_status(document: Mapping[str, Any]) -> Status:
    """A document without our `version` is the original's. One we converted whose `updatedAt`
    moved while our `version` did not was written by the original since: convert it again.
    Teleconsult's own writes move `version`, so they are never taken for the original's."""
    if "version" not in document:
        return Status.ORIGINAL
    note = document.get(MIGRATION_FIELD)
    if (
        isinstance(note, Mapping)
        and note.get("version") == document["version"]
        and note.get("sourceUpdatedAt") != document.get("updatedAt")
    ):
        return Status.CHANGED_BY_ORIGINAL
    return Status.MIGRATED


def read_record(document: Mapping[str, Any], now: datetime) -> OriginalRecord:
    """The original's teleconsultation, or `CannotMigrate` saying what is wrong with it."""
    number = document.get("participantsNumber")
    stored = document.get("participants", [])
    if isinstance(stored, Mapping):  # the request's form, {number, data}, stored as sent
        number = stored.get("number", number)
        stored = stored.get("data", [])
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise CannotMigrate(Reason.MALFORMED_RECORD, "participantsNumber is not a positive number")
    if not isinstance(stored, list) or not all(isinstance(p, Mapping) for p in stored):
        raise CannotMigrate(Reason.MALFORMED_RECORD, "participants is not a list of objects")
    participants = tuple(_participant(entry, index) for index, entry in enumerate(stored))
    external_ids = [p.external_id for p in participants]
    if len(set(external_ids)) != len(external_ids) or len(participants) > number:
        raise CannotMigrate(
            Reason.MALFORMED_RECORD, "participants repeat a userExternalId or exceed their number"
        )
    state = document.get("__STATE__", RecordState.PUBLIC.value)
    if state not in {s.value for s in RecordState}:
        raise CannotMigrate(Reason.MALFORMED_RECORD, "__STATE__ is neither PUBLIC nor TRASH")
    start, end = _schedule(document)
    created = _date(document.get("createdAt")) or start
    room_id = document.get("bandyerRoomId")
    if room_id is not None and (not isinstance(room_id, str) or not room_id):
        raise CannotMigrate(Reason.MALFORMED_RECORD, "bandyerRoomId is not a string")
    return OriginalRecord(
        id=str(document["_id"]),
        state=RecordState(state),
        number=number,
        participants=participants,
        start=start,
        end=end,
        room_id=room_id or None,
        created_at=created,
        updated_at=_date(document.get("updatedAt")) or now,
        creator_id=_text(document.get("creatorId")) or "public",
        updater_id=_text(document.get("updaterId")) or "public",
        teleconsultation_state=document.get("teleconsultationState"),
    )


def _participant(entry: Mapping[str, Any], index: int) -> OriginalParticipant:
    where = f"participants[{index}]"
    external_id = _text(entry.get("userExternalId"))
    if external_id is None:
        raise CannotMigrate(Reason.MALFORMED_RECORD, f"{where}.userExternalId is missing")
    groups = entry.get("groups")
    if groups is None and isinstance(entry.get("group"), str):
        groups = [entry["group"]]
    if groups is not None and (
        not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)
    ):
        raise CannotMigrate(Reason.MALFORMED_RECORD, f"{where}.groups is not a list of strings")
    provider_user = next((entry[f] for f in PROVIDER_USER_FIELDS if _text(entry.get(f))), None)
    return OriginalParticipant(
        external_id=external_id,
        groups=None if groups is None else tuple(groups),
        full_name=_text(entry.get("fullName")),
        language=_text(entry.get("language")),
        provider_user_id=provider_user,
        link=_text(entry.get(LINK_FIELD)),
        stored=dict(entry),
    )


def _schedule(document: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """`startDate`, and `endDate` or, in early versions, `startDate` plus `duration`."""
    start = _date(document.get("startDate"))
    end = _date(document.get("endDate"))
    duration = document.get("duration")
    if start is not None and end is None and isinstance(duration, int) and duration > 0:
        end = datetime.fromtimestamp(start.timestamp() + duration, start.tzinfo)
    if start is None or end is None or end <= start:
        raise CannotMigrate(
            Reason.MALFORMED_DATES, "startDate and endDate must be dates, endDate after startDate"
        )
    return start, end


def _date(value: Any) -> datetime | None:
    """A BSON date (naive means UTC), or an ISO 8601 string with its offset; else None."""
    if isinstance(value, datetime):
        return as_datetime(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return as_datetime(parsed) if parsed.tzinfo is not None else None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def identity_entries(record: OriginalRecord, resolves_bare_ids: bool) -> list[ParticipantEntry]:
    """What the identity provider is asked about each participant: with an identity provider
    that knows people (auth0), their id only, since groups and names come from it; else the
    groups and name the original stored."""
    return [
        ParticipantEntry(
            external_id=p.external_id,
            groups=None if resolves_bare_ids else p.groups,
            full_name=None if resolves_bare_ids else p.full_name,
            language=p.language,
            path=f"participants[{index}]",
        )
        for index, p in enumerate(record.participants)
    ]


@dataclass(frozen=True)
class Conversion:
    """What the original's record becomes: the fields to set, and our record."""

    fields: dict[str, Any]
    record: Teleconsultation


def convert_record(
    document: Mapping[str, Any],
    record: OriginalRecord,
    identities: Sequence[Identity],
    user_map: Mapping[str, str],
    rules: tuple[Privileges, RoomPolicy],
    now: datetime,
) -> Conversion:
    """Our form of `record`: each participant's level from `identities`' groups, its Kaleyra
    user from its entry or `user_map` (external id -> Kaleyra user id), and the Kaleyra room
    with the links the original stored. `document` is the stored one (its `version` and note
    when converted before)."""
    privileges, policy = rules
    participants = tuple(
        _converted_participant(p, i, index, privileges, user_map)
        for index, (p, i) in enumerate(zip(record.participants, identities, strict=True))
    )
    version = int(document.get("version", 0)) + 1
    converted = Teleconsultation(
        id=record.id,
        participants_number=record.number,
        participants=participants,
        start_date=record.start,
        end_date=record.end,
        room=None,
        state=record.state,
        version=version,
        created_at=record.created_at,
        updated_at=record.updated_at,
        creator_id=record.creator_id,
        updater_id=record.updater_id,
    )
    if record.room_id is not None:
        room = _room(record.room_id, record, converted, (privileges, policy))
        converted = replace(converted, room=room)
    fields = to_document(converted)
    del fields["_id"]
    fields["participants"] = [
        {**original.stored, **ours}
        for original, ours in zip(record.participants, fields["participants"], strict=True)
    ]
    fields[MIGRATION_FIELD] = {
        "at": now,
        "version": version,
        "sourceUpdatedAt": fields["updatedAt"],
        "original": _original_values(document, fields),
    }
    return Conversion(fields=fields, record=converted)


def _converted_participant(
    original: OriginalParticipant,
    identity: Identity,
    index: int,
    privileges: Privileges,
    user_map: Mapping[str, str],
) -> Participant:
    level = privileges.level_of(identity.groups)
    if level is None:
        raise CannotMigrate(
            Reason.UNKNOWN_GROUPS, f"participants[{index}]: no group of a privilege level"
        )
    provider_user = original.provider_user_id or user_map.get(original.external_id)
    if provider_user is None:
        raise CannotMigrate(
            Reason.MISSING_USER_MAP_ENTRY, f"participants[{index}]: no Kaleyra user"
        )
    return Participant(
        external_id=original.external_id,
        groups=identity.groups,
        full_name=identity.full_name,
        language=original.language,
        level=level,
        provider_user_id=provider_user,
    )


def _room(
    room_id: str,
    record: OriginalRecord,
    converted: Teleconsultation,
    rules: tuple[Privileges, RoomPolicy],
) -> Room:
    """The Kaleyra room the original made, handing out the links the original stored: a
    participant who already has one and a participant who asks teleconsult join one call."""
    spec = room_spec(converted, *rules)
    links = {
        p.provider_user_id: original.link
        for p, original in zip(converted.participants, record.participants, strict=True)
        if original.link is not None
    }
    if spec is None or len(links) != len(converted.participants):
        raise CannotMigrate(
            Reason.ROOM_WITHOUT_LINKS,
            "bandyerRoomId is set but not every expected participant has an accessLinkURL",
        )
    return Room(provider_room_id=room_id, spec=spec, links=links)


def _original_values(document: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The original's values of the fields conversion replaces: not participants to whose
    entries it only added keys (no second copy of names and links to outlive them). On a
    second conversion, a `teleconsultationState` that is one of ours was written by us: the
    one noted stands."""
    noted = document.get(MIGRATION_FIELD)
    before = dict(noted.get("original", {})) if isinstance(noted, Mapping) else {}
    ours = {phase.value for phase in Phase}
    kept: dict[str, Any] = {}
    for name in REPLACED_FIELDS:
        if name not in document:
            continue
        value = document[name]
        if name == "teleconsultationState" and value in ours and name in before:
            kept[name] = before[name]
        elif name == "participants" and _only_added(value, fields[name]):
            continue
        elif value != fields[name]:
            kept[name] = value
    return kept


def _only_added(original: Any, converted: list[dict[str, Any]]) -> bool:
    """Whether each converted entry holds its original entry's keys with their values."""
    return (
        isinstance(original, list)
        and len(original) == len(converted)
        and all(
            all(entry.get(key) == value for key, value in stored.items())
            for stored, entry in zip(original, converted, strict=True)
        )
    )


def convert_user(document: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a user-map entry of the original gets: `provider` and `providerUserId`
    (`bandyerId` stays), and `receivedUserId` where early versions said `auth0Id`."""
    received = _text(document.get("receivedUserId")) or _text(document.get("auth0Id"))
    provider_user = _text(document.get("bandyerId"))
    if received is None or provider_user is None:
        raise CannotMigrate(
            Reason.MALFORMED_RECORD, "a user-map entry needs receivedUserId and bandyerId"
        )
    return {"provider": PROVIDER, "providerUserId": provider_user, "receivedUserId": received}


def user_migrated(document: Mapping[str, Any]) -> bool:
    return bool(document.get("provider")) and bool(document.get("providerUserId"))


def identity_failure(path: str) -> Reason:
    """An identity provider's refusal of an entry: missing groups, or anything else."""
    return Reason.UNKNOWN_GROUPS if path.endswith(".groups") else Reason.IDENTITY_REFUSED


__all__ = [
    "LINK_FIELD",
    "MIGRATION_FIELD",
    "PROVIDER",
    "CannotMigrate",
    "Conversion",
    "OriginalRecord",
    "Reason",
    "Status",
    "convert_record",
    "convert_user",
    "identity_entries",
    "read_record",
    "record_status",
    "user_migrated",
]
