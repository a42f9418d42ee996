"""Provider events in: `POST /providers/{name}/events`, the video provider's own webhooks.

The provider checks the request with its own scheme (`ProviderEvents.verify_event`):
an unsigned, badly signed or replayed request is a 401 and one warning line (which
names no header value), and changes nothing. The events it reads are recorded on their
teleconsultations (`core.attendance`) and sent out as webhook events. No caller identity
is asked: the signature is the credential.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp_apigami import docs, response_schema

from teleconsult.api.answers import json_answer
from teleconsult.api.errors import read_raw_body
from teleconsult.api.schemas import ProviderEventsReceivedSchema
from teleconsult.api.teleconsultations import errors
from teleconsult.core.features import missing
from teleconsult.errors import NotFound, Unauthorized
from teleconsult.providers.protocols import ProviderEvents
from teleconsult.services import SERVICES

log = logging.getLogger(__name__)

EVENT_SCHEMA = {
    "type": "object",
    "additionalProperties": True,
    "description": "A video provider's own event, in its own form.",
}
"""Documented once, as `ProviderEvent`, for both media types providers send."""


@docs(
    tags=["providers"],
    operationId="receiveProviderEvents",
    summary="The video provider's own webhooks",
    description=(
        "Where the configured video provider posts its events (Kaleyra: `bandyer-signature`; "
        "LiveKit: a JWT in `Authorization` carrying the body's SHA-256). Joins, leaves and the "
        "call's start and end are recorded on the teleconsultation (GET's "
        "`details.attendance`) and sent out as `participant.joined`, `participant.left`, "
        "`call.started` and `call.ended` webhook events. An event already recorded, or for a "
        "room no teleconsultation has, is accepted and changes nothing."
    ),
    requestBody={
        "required": True,
        "description": "The provider's own event, as it sends it (read as raw bytes: the "
        "signature covers them).",
        "content": {
            media_type: {"schema": {"$ref": "#/components/schemas/ProviderEvent"}}
            for media_type in ("application/json", "application/webhook+json")
        },
    },
    responses=errors(400, 401, 404, 408, 409, 413, 501, 503),
)
@response_schema(ProviderEventsReceivedSchema, 200, description="The events were checked.")
async def receive_provider_events(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    video = request.app[SERVICES].video
    if name != video.name:
        raise NotFound(
            f"No video provider named {name!r} is configured here; this service uses "
            f"{video.name!r} (VIDEO_PROVIDER): post its events to /providers/{video.name}/events."
        )
    if not isinstance(video, ProviderEvents):
        raise missing(video, ProviderEvents)
    body = await read_raw_body(request, request.app[SERVICES].settings.http.read_timeout_ms / 1000)
    try:
        events = await video.verify_event(request.headers, body)
    except Unauthorized as refused:
        # Whoever posts here unsigned is worth a warning; the message names no header value.
        log.warning("%s event refused: %s", video.name, refused.message)
        raise
    recorded = await request.app[SERVICES].attendance.record(events)
    return json_answer({"received": len(events), "recorded": recorded})


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    return [app.router.add_post("/providers/{name}/events", receive_provider_events)]
