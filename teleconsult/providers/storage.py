"""What a provider keeps in the service's store, and what it may read of a teleconsultation.

A provider that serves its own pages (the built-in `webrtc` provider, say) runs
in every replica, so whatever it must remember between requests lives in the
store: `ProviderStorage` gives it documents written with compare-and-set and
mailboxes, under its own name. `RoomRoster` is the read-only view of a
teleconsultation such a provider needs to serve a participant (who is invited,
their names, the consultation's window), from `ProviderContext.roster`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from teleconsult.errors import ConfigurationError
from teleconsult.store.provider_data import DocumentWrite, ProviderData, StoredDocument

__all__ = ["ProviderStorage", "RoomRoster", "RosterEntry", "StoredDocument"]


class ProviderStorage:
    """One provider's documents and mailboxes, shared by every replica.

    Writes are compare-and-set: `put(key, document, version)` with the version
    read (None to create) raises `VersionConflict` when another replica wrote
    first. `ttl` makes an entry expire; expired entries are never read.
    """

    def __init__(self, data: ProviderData, namespace: str, clock: Callable[[], datetime]) -> None:
        self._data = data
        self._namespace = namespace
        self._clock = clock

    async def get(self, key: str) -> StoredDocument | None:
        return await self._data.get_document(self._namespace, key, self._clock())

    async def put(
        self,
        key: str,
        document: dict[str, Any],
        version: int | None,
        ttl: timedelta | None = None,
    ) -> int:
        """Write `document` if `key` is still at `version` (None: absent); the new version."""
        expires = None if ttl is None else self._clock() + ttl
        return await self._data.put_document(
            DocumentWrite(self._namespace, key, document, version, expires)
        )

    async def delete(self, key: str) -> None:
        await self._data.delete_document(self._namespace, key)

    async def find(self, prefix: str) -> list[StoredDocument]:
        """Every unexpired document whose key starts with `prefix`, by key."""
        return await self._data.find_documents(self._namespace, prefix, self._clock())

    async def post(self, recipient: str, message: dict[str, Any], ttl: timedelta) -> None:
        """Leave a message for `recipient` (whatever replica serves it)."""
        await self._data.post(self._namespace, recipient, message, self._clock() + ttl)

    async def take(self, recipient: str) -> list[dict[str, Any]]:
        """The recipient's messages, oldest first (per sender), removed from the mailbox."""
        return await self._data.take(self._namespace, recipient, self._clock())

    async def take_for(self, recipients: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
        """The messages of the `recipients`, oldest first, each with its recipient, removed:
        a replica takes the mailboxes of all the pages it serves in one query."""
        return await self._data.take_for(self._namespace, recipients, self._clock())


@dataclass(frozen=True)
class RosterEntry:
    provider_user_id: str
    display_name: str = field(repr=False)
    """Health data: never logged, never put in a URL."""
    is_admin: bool
    language: str | None
    tools: tuple[str, ...] = ()
    """The in-call tools the participant's level enables (`domain.TOOLS` names)."""
    link_generation: int = 0
    """Links of an earlier generation were revoked: they open nothing."""
    blocked: bool = False
    """Removed from the call and kept out."""


@dataclass(frozen=True)
class RoomRoster:
    """A teleconsultation as a provider's own pages may see it."""

    teleconsultation_id: str
    provider_room_id: str | None
    """The room the record points to now; None before it exists or once cancelled."""
    cancelled: bool
    opens_at: datetime
    """The lock time: links are handed out from then on."""
    starts_at: datetime
    ends_at: datetime
    limited: bool
    participants: tuple[RosterEntry, ...]


Roster = Callable[[str], Awaitable[RoomRoster | None]]
"""`roster(teleconsultation_id)`: the teleconsultation's roster, or None when there is none."""


def stored_state(
    storage: ProviderStorage | None, roster: Roster | None, provider: str
) -> tuple[ProviderStorage, Roster]:
    """The storage and roster of a provider that keeps its state in the service's store
    (`ProviderContext.storage`, `.roster`); a ConfigurationError naming it when there are none."""
    if storage is None or roster is None:
        raise ConfigurationError(
            f"the {provider} provider needs the service's store (set by the app)."
        )
    return storage, roster
