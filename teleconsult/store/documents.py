"""Records as CRUD-compatible documents, shared by every store.

A stored teleconsultation looks like one of the original service's CRUD
documents (`_id`, `__STATE__`, `createdAt`, ...); fields the original named
after Bandyer use provider-neutral names here (`providerRoomId`,
`providerUserId`). docs/architecture.md describes the shape.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from teleconsult.core.domain import (
    NO_ATTENDANCE,
    Admission,
    Attendance,
    Level,
    Participant,
    Presence,
    RecordState,
    Room,
    RoomParticipant,
    RoomSpec,
    Teleconsultation,
)
from teleconsult.errors import UnreadableRecord

_counter = int.from_bytes(os.urandom(3), "big")
_counter_lock = threading.Lock()
_process_random = os.urandom(5)


def new_object_id() -> str:
    """A 24-hex id laid out like a MongoDB ObjectId: time, per-process random, counter. Ids
    made later sort later, which internal rows rely on (mailboxes, audit entries); guessable,
    so never the id of a teleconsultation (`new_teleconsultation_id`)."""
    global _counter
    with _counter_lock:
        _counter = (_counter + 1) % 0x1000000
        count = _counter
    return (int(time.time()).to_bytes(4, "big") + _process_random + count.to_bytes(3, "big")).hex()


def new_teleconsultation_id() -> str:
    """24 lowercase hex characters, the shape of the CRUD's ids (clients keep working), from 96
    random bits: no time, process or counter, so ids made around one tell nothing of it (GET
    answers 401 for an id that exists and 404 for one that does not)."""
    return secrets.token_hex(12)


def user_document(
    provider: str, external_id: str, provider_user_id: str, creator_id: str
) -> dict[str, Any]:
    """A user-map entry (the original's "user id map", with `provider` added to the key)."""
    now = datetime.now(UTC)
    return {
        "_id": new_object_id(),
        "__STATE__": RecordState.PUBLIC.value,
        "createdAt": now,
        "updatedAt": now,
        "creatorId": creator_id,
        "updaterId": creator_id,
        "provider": provider,
        "receivedUserId": external_id,
        "providerUserId": provider_user_id,
    }


_OBJECT_ID = re.compile(r"[0-9a-f]{24}")


def is_object_id(value: str) -> bool:
    return _OBJECT_ID.fullmatch(value) is not None


def to_document(teleconsultation: Teleconsultation) -> dict[str, Any]:
    t = teleconsultation
    room = t.room
    return {
        "_id": t.id,
        "__STATE__": t.state.value,
        "createdAt": t.created_at,
        "updatedAt": t.updated_at,
        "creatorId": t.creator_id,
        "updaterId": t.updater_id,
        "version": t.version,
        "participantsNumber": t.participants_number,
        "participants": [
            {
                "userExternalId": p.external_id,
                "groups": list(p.groups),
                "fullName": p.full_name,
                "language": p.language,
                "level": p.level.value,
                "providerUserId": p.provider_user_id,
                # Only once revoked or blocked: other records look as they always did.
                **({"linkGeneration": p.link_generation} if p.link_generation else {}),
                **({"blocked": True} if p.blocked else {}),
            }
            for p in t.participants
        ],
        "startDate": t.start_date,
        "endDate": t.end_date,
        "teleconsultationState": t.phase.value,
        "providerRoomId": room.provider_room_id if room else None,
        "room": None
        if room is None
        else {
            "participants": [
                {
                    "providerUserId": rp.provider_user_id,
                    "isAdmin": rp.is_admin,
                    "tools": list(rp.tools),
                }
                for rp in room.spec.participants
            ],
            "durationInSeconds": room.spec.duration_seconds,
            "live": room.spec.live,
            "recording": room.spec.recording,
            "links": dict(room.links),
        },
        **_attendance_document(t.attendance),
    }


def _attendance_document(attendance: Attendance) -> dict[str, Any]:
    """Kept only once a provider event came: a record without one looks as it always did."""
    if attendance == NO_ATTENDANCE:
        return {}
    return {
        "attendance": {
            "callStartedAt": attendance.call_started_at,
            "callEndedAt": attendance.call_ended_at,
            "presences": [
                {"providerUserId": p.provider_user_id, "joinedAt": p.joined_at, "leftAt": p.left_at}
                for p in attendance.presences
            ],
            **(
                {
                    "admissions": [
                        {"providerUserId": a.provider_user_id, "kind": a.kind, "at": a.at}
                        | ({"by": a.by} if a.by else {})
                        for a in attendance.admissions
                    ]
                }
                if attendance.admissions
                else {}
            ),
        }
    }


def _attendance(document: dict[str, Any] | None) -> Attendance:
    if not document:
        return NO_ATTENDANCE
    return Attendance(
        call_started_at=_maybe_date(document.get("callStartedAt")),
        call_ended_at=_maybe_date(document.get("callEndedAt")),
        presences=tuple(
            Presence(
                provider_user_id=p["providerUserId"],
                joined_at=as_datetime(p["joinedAt"]),
                left_at=_maybe_date(p.get("leftAt")),
            )
            for p in document["presences"]
        ),
        admissions=tuple(
            Admission(a["providerUserId"], a["kind"], as_datetime(a["at"]), a.get("by"))
            for a in document.get("admissions", ())
        ),
    )


def _maybe_date(value: datetime | str | None) -> datetime | None:
    return None if value is None else as_datetime(value)


def from_document(document: dict[str, Any]) -> Teleconsultation:
    """The record a document holds; one this service did not write is an `UnreadableRecord`."""
    try:
        return _from_document(document)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UnreadableRecord(str(document.get("_id"))) from None


def _from_document(document: dict[str, Any]) -> Teleconsultation:
    room_doc = document.get("room")
    room = None
    if room_doc is not None and document.get("providerRoomId"):
        room = Room(
            provider_room_id=document["providerRoomId"],
            spec=RoomSpec(
                participants=tuple(
                    RoomParticipant(
                        provider_user_id=rp["providerUserId"],
                        is_admin=rp["isAdmin"],
                        tools=tuple(rp["tools"]),
                    )
                    for rp in room_doc["participants"]
                ),
                duration_seconds=room_doc["durationInSeconds"],
                live=room_doc["live"],
                recording=room_doc["recording"],
            ),
            links=room_doc["links"],
        )
    return Teleconsultation(
        id=str(document["_id"]),
        participants_number=document["participantsNumber"],
        participants=tuple(
            Participant(
                external_id=p["userExternalId"],
                groups=tuple(p["groups"]),
                full_name=p["fullName"],
                language=p.get("language"),
                level=Level(p["level"]),
                provider_user_id=p["providerUserId"],
                link_generation=int(p.get("linkGeneration", 0)),
                blocked=bool(p.get("blocked", False)),
            )
            for p in document["participants"]
        ),
        start_date=as_datetime(document["startDate"]),
        end_date=as_datetime(document["endDate"]),
        room=room,
        state=RecordState(document["__STATE__"]),
        version=document["version"],
        created_at=as_datetime(document["createdAt"]),
        updated_at=as_datetime(document["updatedAt"]),
        creator_id=document["creatorId"],
        updater_id=document["updaterId"],
        attendance=_attendance(document.get("attendance")),
    )


def as_datetime(value: datetime | str) -> datetime:
    """Dates are aware UTC datetimes in the core, whatever the store keeps."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
