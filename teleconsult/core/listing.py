"""Listing teleconsultations: who may list whose, and the opaque cursor of keyset pages.

Pages follow (start date, id): a cursor is the position of the last item shown,
so records inserted or changed between two reads never shift a page (no item
skipped or repeated, as offset paging would). A caller lists the teleconsultations
they take part in; a manager (MANAGER_GROUPS) any participant's, or all of them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from teleconsult.core.clock import from_micros, to_micros
from teleconsult.core.domain import Phase, Teleconsultation
from teleconsult.errors import Forbidden, InvalidRequest
from teleconsult.store.base import RecordQuery, Records
from teleconsult.store.documents import is_object_id

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
FORGED_CURSOR = (
    "The cursor is not one this service handed out; pass `nextCursor` from the previous "
    "page as it is, or start again without a cursor."
)


@dataclass(frozen=True)
class ListFilters:
    participant: str | None = None
    start_from: datetime | None = None
    start_before: datetime | None = None
    phase: Phase | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    items: tuple[Teleconsultation, ...]
    next_cursor: str | None
    """None on the last page."""


def encode_cursor(start: datetime, record_id: str) -> str:
    """The position after (start, id), as an opaque token (base64url of a small JSON array)."""
    raw = json.dumps([to_micros(start), record_id], separators=(",", ":")).encode()
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
        or not 0 <= us < 10**17
        or not isinstance(record_id, str)
        or not is_object_id(record_id)
        or encode_cursor(from_micros(us), record_id) != cursor
    ):
        raise InvalidRequest(FORGED_CURSOR, path="cursor")
    return from_micros(us), record_id


def listed_participant(requested: str | None, caller_id: str, manager: bool) -> str | None:
    """Whose teleconsultations the caller gets: a manager any participant's (None: all);
    anyone else their own, and a 403 for someone else's."""
    if manager:
        return requested
    if requested is not None and requested != caller_id:
        raise Forbidden(
            "Only members of MANAGER_GROUPS may list another participant's teleconsultations; "
            "leave out `participant` (or give your own id) to list yours."
        )
    return caller_id


class Listing:
    def __init__(self, records: Records) -> None:
        self.records = records

    async def page(self, filters: ListFilters, caller_id: str, manager: bool) -> Page:
        after = decode_cursor(filters.cursor) if filters.cursor is not None else None
        if (
            filters.start_from is not None
            and filters.start_before is not None
            and filters.start_before <= filters.start_from
        ):
            raise InvalidRequest("`to` must be later than `from`.", path="to")
        query = RecordQuery(
            limit=filters.limit + 1,  # one more says whether there is a next page
            participant=listed_participant(filters.participant, caller_id, manager),
            start_from=filters.start_from,
            start_before=filters.start_before,
            phase=filters.phase,
            after=after,
        )
        found = await self.records.find_page(query)
        items = tuple(found[: filters.limit])
        more = len(found) > filters.limit
        last = items[-1] if items else None
        cursor = encode_cursor(last.start_date, last.id) if more and last else None
        return Page(items=items, next_cursor=cursor)
