"""`GET /teleconsultations`: the caller's teleconsultations (a manager's: anyone's), by page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, response_schema
from marshmallow import Schema

from teleconsult.api.answers import json_answer
from teleconsult.api.hardening import NO_STORE
from teleconsult.api.schemas import ListQuerySchema, TeleconsultationListSchema
from teleconsult.api.teleconsultations import caller_of, errors
from teleconsult.core.clock import format_date
from teleconsult.core.domain import Phase, Teleconsultation
from teleconsult.core.listing import DEFAULT_LIMIT, ListFilters
from teleconsult.core.service import require_caller
from teleconsult.observability import redaction
from teleconsult.services import SERVICES

QUERY = web.RequestKey("query", dict)
"""A paged GET's parsed query: its `cursor`, its `limit` and any filters."""
PageHandler = Callable[[web.Request], Awaitable[web.Response]]


def paged(
    operation_id: str,
    summary: str,
    description: str,
    query: type[Schema],
    page: type[Schema],
    *,
    answer: str,
) -> Callable[[PageHandler], PageHandler]:
    """The documentation of a paged GET (the listing, an audit trail) in one place: its query
    parsed into `QUERY`, its page of `items` with a `nextCursor`, and a reader's errors."""

    def document(handler: PageHandler) -> PageHandler:
        handler = response_schema(page, 200, description=answer)(handler)
        handler = querystring_schema(query, put_into=QUERY)(handler)  # type: ignore[arg-type]
        return docs(
            tags=["teleconsultations"],
            operationId=operation_id,
            summary=summary,
            description=description,
            responses=errors(400, 401, 403, 503),
        )(handler)

    return document


@paged(
    "listTeleconsultations",
    "List teleconsultations",
    "The caller's teleconsultations (a manager's, in MANAGER_GROUPS: any participant's, "
    "or all), by start date then id, a page at a time: pass `nextCursor` as `cursor` for "
    "the next page. Pages stay stable while records change. Items never carry links.",
    ListQuerySchema,
    TeleconsultationListSchema,
    answer="One page.",
)
async def list_teleconsultations(request: web.Request) -> web.Response:
    query = request[QUERY]
    caller = await caller_of(request)
    caller_id = require_caller(caller)
    filters = ListFilters(
        participant=query.get("participant"),
        start_from=query.get("from_"),
        start_before=query.get("to"),
        phase=Phase(query["state"]) if "state" in query else None,
        limit=query.get("limit", DEFAULT_LIMIT),
        cursor=query.get("cursor"),
    )
    manager = request.app[SERVICES].authenticator.is_manager(caller)
    page = await request.app[SERVICES].listing.page(filters, caller_id, manager)
    redaction.sensitive(p.full_name for item in page.items for p in item.participants)
    return page_answer([_item(item) for item in page.items], page.next_cursor)


def page_answer(items: list[dict[str, Any]], next_cursor: str | None) -> web.Response:
    """One page of a listing (`nextCursor` null on the last), never cached: it names people."""
    return json_answer({"items": items, "nextCursor": next_cursor}, headers=NO_STORE)


def _item(record: Teleconsultation) -> dict[str, Any]:
    return {
        "id": record.id,
        "start_date": format_date(record.start_date),
        "end_date": format_date(record.end_date),
        "createdAt": format_date(record.created_at),
        "updatedAt": format_date(record.updated_at),
        "state": record.phase.value,
        "participantsNumber": record.participants_number,
        "participants": [
            {"userExternalId": p.external_id, "fullName": p.full_name} for p in record.participants
        ],
    }


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    return [app.router.add_get("/teleconsultations", list_teleconsultations, allow_head=False)]
