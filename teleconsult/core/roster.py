"""The read-only view of a teleconsultation that providers' own pages get (`RoomRoster`)."""

from __future__ import annotations

from teleconsult.core import domain
from teleconsult.core.domain import RecordState, RoomPolicy
from teleconsult.providers.storage import RoomRoster, RosterEntry
from teleconsult.store.base import Records
from teleconsult.store.documents import is_object_id


class Rosters:
    def __init__(self, records: Records, policy: RoomPolicy) -> None:
        self.records = records
        self.policy = policy

    async def roster(self, teleconsultation_id: str) -> RoomRoster | None:
        """The teleconsultation as it is now in the store (trashed ones too, marked)."""
        if not is_object_id(teleconsultation_id):
            return None
        record = await self.records.get_any(teleconsultation_id)
        if record is None:
            return None
        seats = (
            {p.provider_user_id: p for p in record.room.spec.participants} if record.room else {}
        )
        return RoomRoster(
            teleconsultation_id=record.id,
            provider_room_id=record.room.provider_room_id if record.room else None,
            cancelled=record.state is RecordState.TRASH,
            opens_at=domain.lock_time(record, self.policy),
            starts_at=record.start_date,
            ends_at=record.end_date,
            limited=not self.policy.unlimited,
            participants=tuple(
                RosterEntry(
                    provider_user_id=p.provider_user_id,
                    display_name=p.full_name,
                    is_admin=seat.is_admin if (seat := seats.get(p.provider_user_id)) else False,
                    language=p.language,
                    tools=seat.tools if seat else (),
                    link_generation=p.link_generation,
                    blocked=p.blocked,
                )
                for p in record.participants
            ),
        )
