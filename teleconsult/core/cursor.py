"""Opaque cursors of keyset pages: the (date, id) of the last item a page showed.

A cursor is base64url of a small JSON array; it carries no filter and grants
nothing (who may read what is checked on every page), so it need not be signed.
Anything this service did not make is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from teleconsult.core.clock import from_micros, to_micros
from teleconsult.errors import InvalidRequest
from teleconsult.store.documents import is_object_id

T = TypeVar("T")
MAX_MICROS = to_micros(datetime(9999, 1, 1, tzinfo=UTC))
FORGED_CURSOR = (
    "The cursor is not one this service handed out; pass `nextCursor` from the previous "
    "page as it is, or start again without a cursor."
)


def encode_cursor(moment: datetime, record_id: str) -> str:
    """The position after (moment, id), as an opaque token."""
    raw = json.dumps([to_micros(moment), record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; anything this service did not make is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        us, record_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidRequest(FORGED_CURSOR, path="cursor") from None
    if (
        not isinstance(us, int)
        or isinstance(us, bool)
        or not 0 <= us < MAX_MICROS
        or not isinstance(record_id, str)
        or not is_object_id(record_id)
        or encode_cursor(from_micros(us), record_id) != cursor
    ):
        raise InvalidRequest(FORGED_CURSOR, path="cursor")
    return from_micros(us), record_id


def keyset_page(
    found: Sequence[T], limit: int, position: Callable[[T], tuple[datetime, str]]
) -> tuple[tuple[T, ...], str | None]:
    """The page from `found` (read with `limit + 1`: one more says there is a next page), and
    the cursor of the next page (None on the last)."""
    items = tuple(found[:limit])
    if len(found) <= limit or not items:
        return items, None
    return items, encode_cursor(*position(items[-1]))
