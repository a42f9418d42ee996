"""The app factory: settings and configuration in, a ready aiohttp application out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from aiohttp import web

from teleconsult.api import setup_api
from teleconsult.api.hardening import setup_hardening
from teleconsult.api.middleware import request_middleware
from teleconsult.composition import StoreFactory, built, planned
from teleconsult.configuration.service_config import ServiceConfig
from teleconsult.configuration.settings import Settings
from teleconsult.core.clock import Clock, utc_now
from teleconsult.fhir.routes import setup_routes as setup_fhir_routes
from teleconsult.providers.live import LiveConnections
from teleconsult.services import SERVICES, VIDEO_PROVIDER
from teleconsult.store import open_store

MAX_JSON_BODY_BYTES = 64 * 1024
"""A request body of ours is a few KB (25 participants are about 5 KB); a larger one is a 413."""


def create_app(
    settings: Settings,
    config: ServiceConfig,
    *,
    environ: Mapping[str, str] | None = None,
    extra_plugins: Sequence[object] = (),
    clock: Clock = utc_now,
    store_factory: StoreFactory = open_store,
) -> web.Application:
    """Build the app; its services (`composition.built`) open when it starts and close when
    it stops, held under `SERVICES` meanwhile.

    Everything that can be checked without I/O (provider names, the store URL) is checked
    here (`composition.planned`), so a wrong setting fails before the server listens.
    """
    plan = planned(settings, config, environ, extra_plugins)
    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=MAX_JSON_BODY_BYTES,  # image uploads are streamed, not held whole
    )
    setup_hardening(app)

    async def services(app: web.Application) -> AsyncIterator[None]:
        async with built(plan, clock, store_factory) as running:
            app[SERVICES] = running
            app[VIDEO_PROVIDER] = running.video
            yield

    app.cleanup_ctx.append(services)
    app.on_shutdown.append(_close_live_connections)
    app.on_shutdown.append(_answer_waiting_gets)
    setup_fhir_routes(app)  # before the API's document is built: it names /fhir/R4/metadata
    setup_api(app, settings, config, plan.user_id_path)
    for routes in plan.plugins.manager.hook.register_routes():
        app.router.add_routes(routes)
    return app


async def _close_live_connections(app: web.Application) -> None:
    """At the start of a stop, before the grace for requests in flight: a provider's open
    WebSockets would otherwise hold the server for the whole grace."""
    running = app.get(SERVICES)
    if running is not None and isinstance(running.video, LiveConnections):
        await running.video.close_connections()


async def _answer_waiting_gets(app: web.Application) -> None:
    """At the start of a stop: waiting GETs answer now rather than hold the grace."""
    running = app.get(SERVICES)
    if running is not None:
        running.waiter.wake_all()
