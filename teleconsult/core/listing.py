"""Listing teleconsultations: who may list whose, and the opaque cursor of keyset pages.

Pages follow (start date, id): a cursor is the position of the last item shown,
so records inserted or changed between two reads never shift a page (no item
skipped or repeated, as offset paging would). A caller lists the teleconsultations
they take part in; a manager (MANAGER_GROUPS) any participant's, or all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from teleconsult.core.cursor import decode_cursor, keyset_page
from teleconsult.core.domain import Phase, Teleconsultation
from teleconsult.errors import Forbidden, InvalidRequest
from teleconsult.store.base import RecordQuery, Records

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


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
        items, cursor = keyset_page(
            found, filters.limit, lambda record: (record.start_date, record.id)
        )
        return Page(items=items, next_cursor=cursor)
