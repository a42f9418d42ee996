"""Probes: `/-/healthz` (the process answers) and `/-/ready` (the store answers)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp_apigami import docs, response_schema

from teleconsult import __version__, keys
from teleconsult.api.schemas import HealthSchema
from teleconsult.errors import Unavailable

log = logging.getLogger(__name__)

NAME = "teleconsult"


def _status(ok: bool) -> web.Response:
    body = {"status": "OK" if ok else "KO", "name": NAME, "version": __version__}
    return web.json_response(body, status=200 if ok else 503)


@docs(tags=["health"], summary="Liveness: the process answers")
@response_schema(HealthSchema, 200, description="Alive.")
async def healthz(request: web.Request) -> web.Response:
    return _status(True)


@docs(
    tags=["health"],
    summary="Readiness: the store answers",
    responses={503: {"schema": HealthSchema, "description": "The store cannot be reached."}},
)
@response_schema(HealthSchema, 200, description="Ready.")
async def ready(request: web.Request) -> web.Response:
    try:
        await request.app[keys.STORE].ping()
    except Unavailable as error:
        log.warning("not ready: %s", error.message)
        return _status(False)
    return _status(True)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/-/healthz", healthz, allow_head=False)
    app.router.add_get("/-/ready", ready, allow_head=False)
