"""Failed webhook deliveries, for an operator: list them, send one again (ADMIN_GROUPS only:
they name every teleconsultation's participants)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, response_schema
from marshmallow import ValidationError

from teleconsult.api.answers import json_answer
from teleconsult.api.hardening import NO_STORE
from teleconsult.api.schemas import FailedQuerySchema, FailedWebhooksSchema
from teleconsult.api.teleconsultations import operator_errors, operator_of
from teleconsult.camel import camel_fields
from teleconsult.core.clock import format_date
from teleconsult.errors import NotFound
from teleconsult.services import SERVICES
from teleconsult.store.base import Delivery
from teleconsult.validation import invalid

TAGS = ["webhooks"]
DEFAULT_LIMIT = 100


@docs(
    tags=TAGS,
    operationId="listFailedWebhooks",
    summary="Webhook deliveries that failed for good",
    description=(
        "Deliveries not accepted within WEBHOOK_MAX_AGE_MS, or whose endpoint answered "
        "410 Gone, the most recently failed first. Kept 30 days."
    ),
    parameters=[
        {
            "in": "query",
            "name": "limit",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
            "description": "At most this many (default 100).",
        }
    ],
    responses=operator_errors(400, 401, 403, 503),
)
@response_schema(FailedWebhooksSchema, 200, description="The failed deliveries.")
async def list_failed(request: web.Request) -> web.Response:
    await operator_of(request)
    try:
        query: dict[str, Any] = FailedQuerySchema().load(dict(request.query))
    except ValidationError as error:
        raise invalid(error.messages, root="query") from None
    failed = await request.app[SERVICES].store.webhooks.list_failed(
        query.get("limit", DEFAULT_LIMIT)
    )
    return json_answer({"failed": [_failed(delivery) for delivery in failed]}, headers=NO_STORE)


@docs(
    tags=TAGS,
    operationId="retryFailedWebhook",
    summary="Send a failed webhook delivery again",
    description=(
        "It is due at once, with the same `webhook-id`, and retried for another "
        "WEBHOOK_MAX_AGE_MS; an endpoint turned off by a 410 is turned on again."
    ),
    responses={
        202: {"description": "Queued again."},
        **operator_errors(400, 401, 403, 404, 503),
    },
)
async def retry_failed(request: web.Request) -> web.Response:
    await operator_of(request)
    delivery_id = request.match_info["id"]
    if await request.app[SERVICES].deliverer.retry(delivery_id) is None:
        raise NotFound(
            f"No failed webhook delivery has the id {delivery_id!r} (GET /webhooks/failed "
            "lists them; one already retried is no longer failed)."
        )
    return web.Response(status=202)


def _failed(delivery: Delivery) -> dict[str, Any]:
    return {
        **camel_fields(delivery, "id", "event_id", "endpoint", "type", "teleconsultation_id"),
        **camel_fields(delivery, "attempts", "last_error", "payload"),
        "occurredAt": format_date(delivery.due_at),
        "failedAt": format_date(delivery.finished_at) if delivery.finished_at else None,
    }


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    return [
        app.router.add_get("/webhooks/failed", list_failed, allow_head=False),
        app.router.add_post("/webhooks/failed/{id}/retry", retry_failed),
    ]
