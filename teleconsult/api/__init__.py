"""The HTTP API: routes, request validation and the OpenAPI document."""

from __future__ import annotations

import warnings

from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from aiohttp_apigami import AiohttpApiSpec
from aiohttp_apigami.constants import APISPEC_PARSER

from teleconsult import __version__
from teleconsult.api import (
    audit,
    document,
    features,
    health,
    listing,
    provider_events,
    revocations,
    teleconsultations,
    webhooks,
)
from teleconsult.api.cors import setup_cors
from teleconsult.api.document import openapi_document
from teleconsult.api.errors import RequestParser
from teleconsult.api.schemas import ParticipantsObjectSchema
from teleconsult.configuration.service_config import PathStep, ServiceConfig
from teleconsult.configuration.settings import Settings

__all__ = ["openapi_document", "setup_api"]

DESCRIPTION = """Video teleconsultations between doctors and patients.

Create a teleconsultation with its participants; the video provider's room is made once
every participant is known. Each participant polls `GET /teleconsultation/{roomId}` for
their own join link, which stays null until the room can no longer change (the immutable
window before the start).

The caller says who they are in the caller-id header (`miauserid` unless configured
otherwise), or with a bearer token when the service verifies tokens: the security schemes
of this document are this deployment's (Authorize, in Swagger UI). Every error body is
`{statusCode, error, message, code}`; switch on `code`. Send an `Idempotency-Key` with the
two POSTs to make retries safe, and an `x-request-id` to find a request in the logs."""

VALIDATED = web.RequestKey("validated", dict)
"""Where aiohttp-apigami puts data of schemas without their own key (none of ours)."""


def setup_api(
    app: web.Application,
    settings: Settings,
    config: ServiceConfig,
    user_id_path: tuple[PathStep, ...],
) -> None:
    """Add the API routes, then build the OpenAPI document from them (served at /documentation):
    finished now for the settings, and at startup for the providers (`document`)."""
    setup_cors(
        app,
        settings,
        config,
        [
            *teleconsultations.setup_routes(app),
            *listing.setup_routes(app),
            *audit.setup_routes(app),
            *features.setup_routes(app),
            *webhooks.setup_routes(app),
            *revocations.setup_routes(app),
        ],
    )
    health.setup_routes(app)  # probes: not for browsers
    provider_events.setup_routes(app)  # the provider's servers: not for browsers
    spec = AiohttpApiSpec(
        title="teleconsult",
        version=__version__,
        url="/documentation/json",
        swagger_path="/documentation/",
        static_path="/documentation/static",
        openapi_version="3.0.3",
        request_data_name=VALIDATED,  # type: ignore[arg-type]
        info={"description": DESCRIPTION},
        servers=[{"url": "/", "description": "This service, where the document is served."}],
    )
    spec.spec.components.schema("ParticipantsObject", schema=ParticipantsObjectSchema)
    spec.spec.components.schema("ProviderEvent", provider_events.EVENT_SCHEMA)
    spec.spec.components.schema("ParticipantEvent", schema=revocations.ParticipantEventSchema)
    with warnings.catch_warnings():
        # aiohttp-apigami keeps its spec under a plain string key; harmless, but aiohttp warns.
        warnings.simplefilter("ignore", NotAppKeyWarning)
        spec.register(app, in_place=True)
    document.finish(openapi_document(app), settings, user_id_path)
    revocations.document_webhooks(openapi_document(app))
    app.on_startup.append(document.describe_providers)  # after the cleanup contexts: opened
    app.router.add_get("/documentation", _to_documentation, allow_head=False)
    # A parser of our own, per app: our error bodies, and JSON bodies read within bounds.
    app[APISPEC_PARSER] = RequestParser(settings.http.read_timeout_ms / 1000)


async def _to_documentation(request: web.Request) -> web.Response:
    """`/documentation` is where people type; Swagger UI is served at `/documentation/`."""
    raise web.HTTPPermanentRedirect("/documentation/")
