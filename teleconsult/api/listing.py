"""`GET /teleconsultations`: the caller's teleconsultations (a manager's: anyone's), by page."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES

QUERY = web.RequestKey("query", dict)
"""A paged GET's parsed query: its `cursor`, its `limit` and any filters."""


@dataclass(frozen=True)
class PageRequest:
    """What every paged GET starts from: its parsed query and who asks."""

    query: dict[str, Any]
    caller: Caller
    manager: bool
    """The caller is in MANAGER_GROUPS."""


PageHandler = Callable[[web.Request, PageRequest], Awaitable[web.Response]]


def paged(
    operation_id: str, query: type[Schema], page: type[Schema], *, answer: str
) -> Callable[[PageHandler], Callable[[web.Request], Awaitable[web.Response]]]:
    """A paged GET (the listing, an audit trail) in one place: its query parsed into a
    `PageRequest` with its caller, its page of `items` with a `nextCursor`, a reader's errors,
    and its documentation (the handler's docstring: its summary line, then its description)."""

    def document(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        summary, _, description = inspect.cleandoc(handler.__doc__ or "").partition("\n\n")

        async def handle(request: web.Request) -> web.Response:
            caller = await caller_of(request)
            manager = request.app[SERVICES].authenticator.is_manager(caller)
            return await handler(request, PageRequest(request[QUERY], caller, manager))

        documented = response_schema(page, 200, description=answer)(handle)
        documented = querystring_schema(query, put_into=QUERY)(documented)  # type: ignore[arg-type]
        return docs(
            tags=["teleconsultations"],
            operationId=operation_id,
            summary=summary,
            description=" ".join(description.split()),
            responses=errors(400, 401, 403, 503),
        )(documented)

    return document


@paged("listTeleconsultations", ListQuerySchema, TeleconsultationListSchema, answer="One page.")
async def list_teleconsultations(request: web.Request, asked: PageRequest) -> web.Response:
    """List teleconsultations

    The caller's teleconsultations (a manager's, in MANAGER_GROUPS: any participant's, or
    all), by start date then id, a page at a time: pass `nextCursor` as `cursor` for the next
    page. Pages stay stable while records change. Items never carry links."""
    query = asked.query
    filters = ListFilters(
        participant=query.get("participant"),
        start_from=query.get("from_"),
        start_before=query.get("to"),
        phase=Phase(query["state"]) if "state" in query else None,
        limit=query.get("limit", DEFAULT_LIMIT),
        cursor=query.get("cursor"),
    )
    caller_id = require_caller(asked.caller)
    page = await request.app[SERVICES].listing.page(filters, caller_id, asked.manager)
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
