"""The EHR's `Appointment.identifier`, kept in the store every replica shares, so that a
conditional create (`If-None-Exist: identifier=...`) makes nothing twice.

Each identifier is claimed for a record id by one conditional write (the provider-data
documents of `store.provider_data`, on SQLite and MongoDB alike) before the record is
made: of two concurrent creates, one wins the claim, the other finds the winner's
record. A claim whose record never came (a crash between the two writes) or was deleted
since (retention) is taken over once it is older than `STALE_CLAIM`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from teleconsult.core.clock import Clock, format_date
from teleconsult.errors import Conflict, VersionConflict
from teleconsult.fhir.mapping import AppointmentId
from teleconsult.store.base import Records
from teleconsult.store.provider_data import DocumentWrite, ProviderData, StoredDocument

NAMESPACE = "fhir"
STALE_CLAIM = timedelta(minutes=5)
"""Longer than any request takes: a claim this old without its record is abandoned."""
ATTEMPTS = 5


def claim_key(identifier: AppointmentId) -> str:
    return "identifier:" + json.dumps([identifier.value, identifier.system], separators=(",", ":"))


def value_prefix(value: str) -> str:
    """The start of every claim key of `value`, whatever its system."""
    return "identifier:" + json.dumps([value], separators=(",", ":"))[:-1] + ","


def record_key(record_id: str) -> str:
    return "appointment:" + record_id


@dataclass(frozen=True)
class Identifiers:
    data: ProviderData
    records: Records
    clock: Clock

    async def holders(self, system: str | None, value: str) -> list[str]:
        """The ids of the records holding `system|value` (any system when `system` is None)."""
        now = self.clock()
        if system is not None:
            stored = await self.data.get_document(
                NAMESPACE, claim_key(AppointmentId(system or None, value)), now
            )
            found = [stored] if stored else []
        else:
            found = await self.data.find_documents(NAMESPACE, value_prefix(value), now)
        return [str(document.document["teleconsultationId"]) for document in found]

    async def claim(self, identifier: AppointmentId, record_id: str) -> str | None:
        """Claim `identifier` for `record_id` (None), or the id of the record holding it."""
        key = claim_key(identifier)
        for _ in range(ATTEMPTS):
            stored = await self.data.get_document(NAMESPACE, key, self.clock())
            if stored is not None and not await self._abandoned(stored):
                return str(stored.document["teleconsultationId"])
            try:
                await self._write(key, record_id, stored.version if stored else None)
            except VersionConflict:
                continue  # another request claimed it first: read whose
            await self._write(record_key(record_id), record_id, None, identifier.as_json())
            return None
        raise Conflict(
            "The Appointment.identifier kept being claimed while this request ran; retry.",
            code="contention",
        )

    async def release(self, identifier: AppointmentId, record_id: str) -> None:
        """Give up a claim whose record was not made."""
        stored = await self.data.get_document(NAMESPACE, claim_key(identifier), self.clock())
        if stored is not None and stored.document["teleconsultationId"] == record_id:
            await self.data.delete_document(NAMESPACE, claim_key(identifier))
        await self.data.delete_document(NAMESPACE, record_key(record_id))

    async def of_record(self, record_id: str) -> AppointmentId | None:
        stored = await self.data.get_document(NAMESPACE, record_key(record_id), self.clock())
        if stored is None or "value" not in stored.document:
            return None
        return AppointmentId(stored.document.get("system"), stored.document["value"])

    async def _abandoned(self, stored: StoredDocument) -> bool:
        claimed_at = str(stored.document["claimedAt"])
        if format_date(self.clock() - STALE_CLAIM) < claimed_at:
            return False
        return await self.records.get_any(str(stored.document["teleconsultationId"])) is None

    async def _write(
        self,
        key: str,
        record_id: str,
        expected_version: int | None,
        extra: dict[str, str] | None = None,
    ) -> None:
        document = {
            "teleconsultationId": record_id,
            "claimedAt": format_date(self.clock()),
            **(extra or {}),
        }
        await self.data.put_document(
            DocumentWrite(NAMESPACE, key, document, expected_version, expires_at=None)
        )
