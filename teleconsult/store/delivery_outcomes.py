"""How a leased webhook delivery ends, the same in every backend: delivered, or failed with its
error (an attempt counted). `FinishedDeliveries` turns `Webhooks.delivered` and `Webhooks.fail`
into one `Outcome`, so each backend writes an end in one place, its `_finish`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from teleconsult.store.base import DeliveryStatus


@dataclass(frozen=True)
class Outcome:
    """A leased delivery's end: its final status, when, and (failed) the last error."""

    status: DeliveryStatus
    at: datetime
    error: str | None = None

    @property
    def counts_attempt(self) -> bool:
        """A failure counts as an attempt; a delivery was counted when it was sent."""
        return self.status is DeliveryStatus.FAILED


class FinishedDeliveries(ABC):
    """`delivered` and `fail` of a backend's `Webhooks`, written by its `_finish`."""

    async def delivered(self, delivery_id: str, owner: str, version: int, now: datetime) -> bool:
        outcome = Outcome(DeliveryStatus.DELIVERED, now)
        return await self._finish(delivery_id, owner, version, outcome)

    async def fail(
        self, delivery_id: str, owner: str, version: int, now: datetime, error: str
    ) -> bool:
        outcome = Outcome(DeliveryStatus.FAILED, now, error)
        return await self._finish(delivery_id, owner, version, outcome)

    @abstractmethod
    async def _finish(self, delivery_id: str, owner: str, version: int, outcome: Outcome) -> bool:
        """End the delivery `owner` leases at `version`; False when the lease was lost or a
        later change rewrote it."""
