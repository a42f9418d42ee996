"""What GET answers a participant: their view of the teleconsultation, and the request that
asks the provider for their link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from teleconsult.core import domain
from teleconsult.core.domain import Participant, Room, RoomPolicy, Teleconsultation
from teleconsult.providers.protocols import JoinRequest


@dataclass(frozen=True)
class JoinInfo:
    provider_user_id: str
    access_link: str | None
    participants: tuple[tuple[str, str], ...]
    """(provider user id, full name) of every known participant."""
    provider_room_id: str | None
    """The room, once everyone is known."""
    version: int = 0
    """The record version read: a waiting GET waits for a later one (`core.waiting`)."""
    opens_at: datetime | None = None
    """When the link is handed out, once the room exists (the lock time)."""
    attendance: dict[str, object] | None = None
    """Who joined the call when (`events.attendance`), once the provider reported any."""
    ended: bool = False
    """The provider reported the call's end: no link any more, and nothing to wait for."""


def join_info(
    record: Teleconsultation,
    me: Participant,
    link: str | None,
    attendance: dict[str, object] | None,
    policy: RoomPolicy,
) -> JoinInfo:
    """The caller's view of `record`: their link (None until it is handed out) and the room."""
    return JoinInfo(
        provider_user_id=me.provider_user_id,
        access_link=link,
        participants=tuple((p.provider_user_id, p.full_name) for p in record.participants),
        provider_room_id=record.room.provider_room_id if record.room else None,
        version=record.version,
        opens_at=domain.lock_time(record, policy) if record.room else None,
        attendance=attendance,
        ended=record.phase is domain.Phase.ENDED,
    )


def join_request(
    record: Teleconsultation,
    room: Room,
    me: Participant,
    language: str | None,
    background: bool,
    policy: RoomPolicy,
) -> JoinRequest:
    """What the provider is asked for `me`'s link to `room`."""
    [seat] = [p for p in room.spec.participants if p.provider_user_id == me.provider_user_id]
    return JoinRequest(
        teleconsultation_id=record.id,
        provider_room_id=room.provider_room_id,
        participant=seat,
        display_name=me.full_name,
        stored_link=room.links.get(me.provider_user_id),
        language=language or me.language,
        background=background,
        opens_at=domain.lock_time(record, policy),
        starts_at=record.start_date,
        ends_at=record.end_date,
        limited=room.spec.duration_seconds is not None,
        link_generation=me.link_generation,
    )
