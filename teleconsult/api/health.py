"""Probes and metrics.

`/-/healthz`: the process answers (liveness). `/-/ready`: the store answers
(readiness: a replica whose database is away is taken out of the load
balancer). `/-/check-up`: the store and the video provider answer (for a
dashboard; not a probe, since a provider outage should not restart pods).
`/-/metrics`: Prometheus text. A probe that keeps failing (every few seconds while
the store is down) logs a warning when it starts failing and a line when it
passes again, not one per probe.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_apigami import docs, response_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from teleconsult import __version__
from teleconsult.api.answers import json_answer
from teleconsult.api.schemas import HealthSchema
from teleconsult.errors import ProviderError, Unavailable
from teleconsult.observability.logs import Outage
from teleconsult.services import SERVICES, Services

log = logging.getLogger(__name__)

NAME = "teleconsult"
TAGS = ["health"]
KO = {503: {"schema": HealthSchema, "description": "A dependency does not answer."}}
NOT_READY, CHECK_UP_FAILED = "not ready", "check-up failed"
PROBE_LOGS = web.AppKey("probe_logs", dict[str, Outage])
"""Each probe's failures, logged when they start and when they end."""


def _status(
    ok: bool, placeholders: tuple[str, ...] = (), extra: dict[str, object] | None = None
) -> web.Response:
    body: dict[str, object] = {"status": "OK" if ok else "KO", "name": NAME, "version": __version__}
    if placeholders:
        body["placeholders"] = list(placeholders)
    return json_answer(body | (extra or {}), status=200 if ok else 503)


@docs(tags=TAGS, operationId="getLiveness", summary="Liveness: the process answers")
@response_schema(HealthSchema, 200, description="Alive.")
async def healthz(request: web.Request) -> web.Response:
    return _status(True)


Check = Callable[[Services], Awaitable[None]]
"""One dependency a probe asks: it returns when the dependency answers."""
Report = Callable[[Services], Awaitable[dict[str, object]]]
"""What a passing probe adds to its answer."""


async def _no_report(services: Services) -> dict[str, object]:
    return {}


async def _unmigrated(services: Services) -> dict[str, object]:
    """The original's documents left unconverted (a count, never ids): requests on them
    answer 500 `unreadable_record` until `teleconsult migrate` converts them."""
    count = await services.store.records.count_unmigrated()
    return {"unmigratedRecords": count} if count else {}


def _probe(
    operation_id: str,
    summary: str,
    texts: tuple[str, str],
    *checks: Check,
    report: Report = _no_report,
) -> Handler:
    """The readiness and check-up probes differ only in their words and their checks: one
    handler, OK when every check passes (with what `report` adds); KO (logged) at the first
    that fails, or while a setting is a placeholder (the KO names the variables, never their
    values)."""
    ok, failure = texts

    @docs(tags=TAGS, operationId=operation_id, summary=summary, responses=KO)
    @response_schema(HealthSchema, 200, description=ok)
    async def probe(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        outage = request.app[PROBE_LOGS][failure]
        if services.placeholders:
            outage.failed(f"{', '.join(services.placeholders)} still set to a placeholder")
            return _status(False, services.placeholders)
        try:
            for check in checks:
                await check(services)
            extra = await report(services)
        except (Unavailable, ProviderError) as error:
            outage.failed(error.message)
            return _status(False)
        outage.recovered()
        return _status(True, extra=extra)

    return probe


ready = _probe(
    "getReadiness",
    "Readiness: the store answers and no setting is a placeholder",
    ("Ready.", NOT_READY),
    lambda services: services.store.health.ping(),
)
check_up = _probe(
    "getCheckUp",
    "Check-up: the store and the video provider answer, no setting is a placeholder",
    ("Both answer.", CHECK_UP_FAILED),
    lambda services: services.store.health.ping(),
    lambda services: services.service.video.check(),
    report=_unmigrated,
)


@docs(
    tags=TAGS,
    operationId="getMetrics",
    summary="Prometheus metrics",
    responses={200: {"description": "Prometheus text format."}},
)
async def metrics(request: web.Request) -> web.Response:
    """What is in memory only: a scrape never waits on the store or a provider."""
    registry = request.app[SERVICES].metrics.registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def setup_routes(app: web.Application) -> None:
    app[PROBE_LOGS] = {
        NOT_READY: Outage(log, NOT_READY, "ready again"),
        CHECK_UP_FAILED: Outage(log, CHECK_UP_FAILED, "check-up passes again"),
    }
    # HEAD too: some load balancers and uptime checks probe with it.
    app.router.add_get("/-/healthz", healthz)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/-/check-up", check_up)
    app.router.add_get("/-/metrics", metrics, allow_head=False)
