"""What providers keep in the service's store: the aggregate's protocol (`store/base.py` has
the others), so every replica shares it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class StoredDocument:
    """A provider's document, with the version a compare-and-set write must name."""

    key: str
    version: int
    document: dict[str, Any]


@dataclass(frozen=True)
class DocumentWrite:
    """A compare-and-set write of one provider document: `expected_version` None creates it,
    a number replaces that version; `expires_at` None never expires."""

    namespace: str
    key: str
    document: dict[str, Any]
    expected_version: int | None
    expires_at: datetime | None


class ProviderData(Protocol):
    """What providers keep in the service's store, so every replica shares it.

    Documents under a namespace (the provider's name) and a key, written with
    compare-and-set; and mailboxes: messages posted to a recipient and taken, in
    the order each sender posted them, by the replica that serves the recipient.
    Anything may carry an expiry; expired entries are never read and are purged
    by the reconciler.
    """

    async def get_document(
        self, namespace: str, key: str, now: datetime
    ) -> StoredDocument | None: ...

    async def put_document(self, write: DocumentWrite) -> int:
        """Write a document and return its new version; `VersionConflict` when the stored
        version is not the one expected (or, creating, when the document exists)."""
        ...

    async def delete_document(self, namespace: str, key: str) -> None: ...

    async def find_documents(
        self, namespace: str, prefix: str, now: datetime
    ) -> list[StoredDocument]:
        """The unexpired documents whose key starts with `prefix`, by key."""
        ...

    async def post(
        self, namespace: str, recipient: str, message: dict[str, Any], expires_at: datetime
    ) -> None: ...

    async def take(self, namespace: str, recipient: str, now: datetime) -> list[dict[str, Any]]:
        """Remove and return the recipient's unexpired messages, oldest first."""
        ...

    async def take_for(
        self, namespace: str, recipients: Sequence[str], now: datetime
    ) -> list[tuple[str, dict[str, Any]]]:
        """Remove and return the unexpired messages of the `recipients`, oldest first, each
        with its recipient: one query for the pages a replica serves, whatever their names."""
        ...

    async def purge_expired(self, now: datetime, limit: int) -> int:
        """Delete up to `limit` expired documents and messages; return how many went."""
        ...
