"""`GET /fhir/R4/Appointment?...`: a searchset Bundle, on the listing's keyset cursors and
permissions (a participant finds their own; a manager anyone's), with `next` links."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from multidict import MultiMapping

from teleconsult.api.hardening import NO_STORE
from teleconsult.api.teleconsultations import caller_of
from teleconsult.core.domain import Phase, Teleconsultation
from teleconsult.core.listing import DEFAULT_LIMIT, MAX_LIMIT, ListFilters
from teleconsult.core.service import require_caller
from teleconsult.errors import InvalidRequest
from teleconsult.fhir.http import base_url, fhir_answer
from teleconsult.fhir.mapping import appointment_of, fhir_status
from teleconsult.fhir.r4 import served
from teleconsult.fhir.views import groups_by_actor, identifiers_of, may_read
from teleconsult.observability import redaction
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES, Services

PARAMETERS = frozenset({"actor", "date", "status", "identifier", "_count", "_cursor"})
STATUSES = {"booked", "arrived", "fulfilled", "cancelled"}
PHASES = {"fulfilled": Phase.ENDED, "cancelled": Phase.CANCELLED}
"""The statuses one phase holds exactly, which the store filters itself."""
MICROSECOND = timedelta(microseconds=1)


def search_filters(query: MultiMapping[str]) -> tuple[ListFilters, frozenset[str]]:
    """The listing's filters, and the statuses wanted (empty: any)."""
    unknown = sorted(set(query) - PARAMETERS)
    if unknown:
        raise InvalidRequest(
            f"Unsupported search parameter {unknown[0]!r}; this service searches Appointments "
            f"by {', '.join(sorted(PARAMETERS - {'_cursor'}))}.",
            path=unknown[0],
        )
    start_from, start_before = _dates(query.getall("date", ()))
    statuses = _statuses(query.getall("status", ()))
    phase = PHASES[next(iter(statuses))] if len(statuses) == 1 and statuses & set(PHASES) else None
    filters = ListFilters(
        participant=_actor(query.get("actor")),
        start_from=start_from,
        start_before=start_before,
        phase=phase,
        limit=_count(query.get("_count")),
        cursor=query.get("_cursor"),
    )
    return filters, statuses


def _actor(value: str | None) -> str | None:
    """`Patient/123` or `123`: the participant's external id."""
    if value is None:
        return None
    external_id = value.rpartition("/")[2]
    if not external_id:
        raise InvalidRequest("actor must be 'Type/id' or an id.", path="actor")
    return external_id


def _count(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"_count must be a whole number from 1 to {MAX_LIMIT}.", path="_count")
    return int(value)


def _statuses(values: Sequence[str]) -> frozenset[str]:
    wanted = frozenset(code for value in values for code in value.split(","))
    unknown = sorted(wanted - STATUSES)
    if unknown:
        raise InvalidRequest(
            f"status {unknown[0]!r} is not one an Appointment here has; use "
            f"{', '.join(sorted(STATUSES))}.",
            path="status",
        )
    return wanted


def _dates(values: Sequence[str]) -> tuple[datetime | None, datetime | None]:
    """`date=geX&date=ltY` as [from, before): `ge`/`gt` bound the start from below, `lt`/`le`
    from above."""
    start_from = start_before = None
    for value in values:
        prefix = value[:2]
        if prefix not in ("ge", "gt", "lt", "le"):
            raise InvalidRequest(
                f"date {value!r} needs a prefix ge, gt, lt or le (date=ge2030-03-01&"
                "date=lt2030-03-02 for one day).",
                path="date",
            )
        moment = _moment(value[2:], value)
        if prefix[0] == "g":
            start_from = moment + MICROSECOND if prefix == "gt" else moment
        else:
            start_before = moment + MICROSECOND if prefix == "le" else moment
    return start_from, start_before


def _moment(text: str, value: str) -> datetime:
    """An instant with its zone, or a day (its start, in UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequest(
            f"date {value!r} must be a day (2030-03-01) or an instant with its zone "
            "(2030-03-01T10:00:00Z).",
            path="date",
        )
    return moment


async def search(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    caller = await caller_of(request)
    caller_id = require_caller(caller)
    if "identifier" in request.query:
        return await _by_identifier(request, services, caller)
    filters, statuses = search_filters(request.query)
    manager = services.authenticator.is_manager(caller)
    page = await services.listing.page(filters, caller_id, manager)
    records = [r for r in page.items if not statuses or fhir_status(r) in statuses]
    next_url = None
    if page.next_cursor is not None:
        next_url = _self_url(request, _cursor=page.next_cursor)
    return await _bundle(request, services, records, next_url)


async def _by_identifier(request: web.Request, services: Services, caller: Caller) -> web.Response:
    """The Appointment with this EHR identifier, if the caller may read it."""
    if set(request.query) - {"identifier", "_count"}:
        raise InvalidRequest(
            "identifier is searched alone (with _count at most): it names one Appointment.",
            path="identifier",
        )
    system, bar, value = request.query["identifier"].rpartition("|")
    if not value:
        raise InvalidRequest(
            "identifier must be 'system|value', '|value' or 'value'.", path="identifier"
        )
    identifiers = identifiers_of(services)
    holders = await identifiers.holders(system if bar else None, value)
    found = [await services.store.records.get_any(holder) for holder in holders]
    records = [r for r in found if r is not None and may_read(services, r, caller)]
    return await _bundle(request, services, records, None)


def _self_url(request: web.Request, **replaced: str) -> str:
    query = [(k, v) for k, v in request.query.items() if k not in replaced]
    query += list(replaced.items())
    return f"{base_url(request)}/Appointment" + (f"?{urlencode(query)}" if query else "")


async def _bundle(
    request: web.Request,
    services: Services,
    records: Sequence[Teleconsultation],
    next_url: str | None,
) -> web.Response:
    """Entries never carry a link (as the listing's items): read one to get yours."""
    redaction.sensitive(p.full_name for record in records for p in record.participants)
    identifiers = identifiers_of(services)
    kept = await asyncio.gather(*(identifiers.of_record(record.id) for record in records))
    groups, base = groups_by_actor(services), base_url(request)
    links = [BundleLink(relation="self", url=_self_url(request))]
    if next_url is not None:
        links.append(BundleLink(relation="next", url=next_url))
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/Appointment/{record.id}",
            "resource": appointment_of(record, groups, identifier),
            "search": BundleEntrySearch(mode="match"),
        }
        for record, identifier in zip(records, kept, strict=True)
    ]
    bundle = Bundle(type="searchset", link=links, entry=[BundleEntry(**e) for e in entries] or None)
    return fhir_answer(served(bundle), headers=NO_STORE)
