"""`GET /teleconsultation/:id/audit`: a teleconsultation's audit trail, for managers only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from teleconsult.api.listing import PageRequest, page_answer, paged
from teleconsult.api.schemas import AuditPageSchema, PageQuerySchema
from teleconsult.camel import camel_fields
from teleconsult.core.clock import format_date
from teleconsult.core.listing import DEFAULT_LIMIT
from teleconsult.errors import Forbidden
from teleconsult.services import SERVICES
from teleconsult.store.audit import AuditEntry


@paged("getAuditTrail", PageQuerySchema, AuditPageSchema, answer="One page of entries.")
async def get_audit_trail(request: web.Request, asked: PageRequest) -> web.Response:
    """Who was handed links, and who changed what

    The teleconsultation's audit trail, oldest first, a page at a time: every join link
    handed out (to whom, when, from which address) and every change (who, when, which
    fields). Never links, tokens or names. Managers (MANAGER_GROUPS) only; entries outlive a
    cancelled teleconsultation until AUDIT_RETENTION_DAYS."""
    if not asked.manager:
        raise Forbidden("Only members of MANAGER_GROUPS may read audit trails.")
    query = asked.query
    page = await request.app[SERVICES].audit.page(
        request.match_info["roomId"], query.get("cursor"), query.get("limit", DEFAULT_LIMIT)
    )
    return page_answer([_entry(e) for e in page.entries], page.next_cursor)


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        **camel_fields(entry, "id", "action", "actor", "participant", "request_id"),
        **camel_fields(entry, "client_address", "user_agent"),
        "at": format_date(entry.at),
        "fields": list(entry.fields),
    }


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    return [
        app.router.add_get("/teleconsultation/{roomId}/audit", get_audit_trail, allow_head=False)
    ]
