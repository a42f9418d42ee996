"""Prometheus metrics, in one registry per app (`Metrics.registry`), served at `/-/metrics`.

Providers and the store are measured from outside (`observability.measured`), so
every plugin and every store is measured alike without knowing about metrics.
Label values are operation names and outcomes, never ids. A scrape reads only
what is in memory: the gauges counted in the store are refreshed in the
background (`core.store_gauges`) and say their age.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from teleconsult import __version__
from teleconsult.errors import ProviderError, Unavailable
from teleconsult.observability.measured import Observer
from teleconsult.providers.live import CallCounts

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip
"""From half a millisecond: a GET served from SQLite takes about one."""
SWITCHING_PROTOCOLS = "101"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes...
        Info("teleconsult_build", "The running version.", registry=r).info({"version": __version__})
        self._http_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self.store_gauges_refreshed: float | None = None
        """`time.monotonic()` of the last refresh of the store gauges that succeeded."""
        Gauge(
            "teleconsult_store_gauges_age_seconds",
            "Seconds since the gauges counted in the store were last refreshed (-1: never).",
            registry=r,
        ).set_function(self._store_gauges_age)
        self.http_requests = Counter(
            "teleconsult_http_requests", "HTTP requests answered.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "teleconsult_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.provider_calls = Counter(
            "teleconsult_provider_calls", "Calls to video and identity providers.",
            ["kind", "provider", "operation", "outcome"], registry=r,
        )  # fmt: skip
        self.provider_duration = Histogram(
            "teleconsult_provider_call_duration_seconds", "Time a provider call took.",
            ["kind", "provider", "operation"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.store_duration = Histogram(
            "teleconsult_store_operation_duration_seconds", "Time a store operation took.",
            ["operation", "outcome"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rooms_created = Counter(
            "teleconsult_rooms_created", "Provider rooms created.", ["provider"], registry=r
        )
        self.rooms_deleted = Counter(
            "teleconsult_rooms_deleted", "Provider rooms deleted.", ["provider"], registry=r
        )
        self.pending_jobs = Gauge(
            "teleconsult_reconciliation_pending_jobs",
            "Room jobs waiting in the outbox (database-wide: aggregate with max).", registry=r,
        )  # fmt: skip
        self.oldest_job_age = Gauge(
            "teleconsult_reconciliation_oldest_job_age_seconds",
            "Age of the oldest job in the outbox; 0 when empty (database-wide).", registry=r,
        )  # fmt: skip
        self.jobs_done = Counter(
            "teleconsult_reconciliation_jobs", "Outbox jobs the reconciler finished.",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.webhook_deliveries = Counter(
            "teleconsult_webhook_deliveries",
            "Webhook deliveries by endpoint and outcome: delivered, retried (an attempt failed), "
            "failed (for good: GET /webhooks/failed), gone (the endpoint answered 410).",
            ["endpoint", "outcome"], registry=r,
        )  # fmt: skip
        self.webhook_delay = Histogram(
            "teleconsult_webhook_delay_seconds",
            "From an event (a change, or a due time) to its delivery.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600), registry=r,
        )  # fmt: skip
        self.webhook_pending = Gauge(
            "teleconsult_webhook_pending",
            "Webhook deliveries waiting to be sent, future ones included (database-wide).",
            registry=r,
        )  # fmt: skip
        self.webhook_failed = Gauge(
            "teleconsult_webhook_failed",
            "Webhook deliveries that failed for good and wait for an operator (database-wide).",
            registry=r,
        )  # fmt: skip
        self.webhook_oldest_pending_age = Gauge(
            "teleconsult_webhook_oldest_pending_age_seconds",
            "How long the oldest due webhook delivery has waited; 0 when none (database-wide).",
            registry=r,
        )  # fmt: skip
        self.retention_purged = Counter(
            "teleconsult_retention_purged",
            "What the retention pass deleted for good, by kind (teleconsultations, user_map, "
            "audit_entries, idempotency_keys).",
            ["kind"], registry=r,
        )  # fmt: skip
        self.teleconsultations = Gauge(
            "teleconsult_teleconsultations",
            "Stored teleconsultations by state (database-wide: aggregate with max).",
            ["state"], registry=r,
        )  # fmt: skip

    def watch_calls(self, counts: Callable[[], CallCounts]) -> None:
        """Serve the calls a provider carries itself (`LiveCalls`), read at every scrape."""
        self.registry.register(_CallsCollector(counts))

    def observe_http(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count and time one answered request. Each (method, route, status)'s children are
        looked up once: `labels()` checks and hashes its values at every call."""
        children = self._http_children.get((method, route, status))
        if children is None:
            children = (
                self.http_requests.labels(method, route, status),
                self.http_duration.labels(method, route),
            )
            self._http_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_websocket(self, method: str, route: str) -> None:
        """A WebSocket that was open (status 101), counted but not timed: it lasts as long as
        its call, and would drown the request durations."""
        self.http_requests.labels(method, route, SWITCHING_PROTOCOLS).inc()

    def _store_gauges_age(self) -> float:
        if self.store_gauges_refreshed is None:
            return -1.0
        return time.monotonic() - self.store_gauges_refreshed

    def observe_provider(self, kind: str, provider: str) -> Observer:
        """What to record of each call to a provider: its outcome and duration, and the
        rooms it created or deleted."""
        rooms = {"create_room": self.rooms_created, "delete_room": self.rooms_deleted}

        def observe(operation: str, error: BaseException | None, seconds: float) -> None:
            outcome = "ok"
            if isinstance(error, ProviderError):
                outcome = error.kind
            elif isinstance(error, Exception):
                outcome = "refused"  # the provider declined the request (a 4xx of ours), or a bug
            elif error is not None:
                outcome = "cancelled"
            self.provider_calls.labels(kind, provider, operation, outcome).inc()
            self.provider_duration.labels(kind, provider, operation).observe(seconds)
            if error is None and operation in rooms:
                rooms[operation].labels(provider).inc()

        return observe

    def observe_store(self) -> Observer:
        children: dict[tuple[str, str], Histogram] = {}  # looked up once each, as observe_http

        def observe(operation: str, error: BaseException | None, seconds: float) -> None:
            outcome = "ok"
            if isinstance(error, Unavailable):
                outcome = "unavailable"
            elif isinstance(error, Exception):
                outcome = "error"
            elif error is not None:
                outcome = "cancelled"
            child = children.get((operation, outcome))
            if child is None:
                child = children[(operation, outcome)] = self.store_duration.labels(
                    operation, outcome
                )
            child.observe(seconds)

        return observe


class _CallsCollector(Collector):
    """The calls a provider carries itself, on this replica: its counts at each scrape."""

    def __init__(self, counts: Callable[[], CallCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield GaugeMetricFamily(
            "teleconsult_call_pages_connected",
            "Call pages connected to this replica (their signaling WebSockets).",
            value=counts.pages_connected,
        )
        yield GaugeMetricFamily(
            "teleconsult_calls_in_progress",
            "Calls with two pages or more connected, each counted by one replica (sum them).",
            value=counts.calls_in_progress,
        )
        paths = CounterMetricFamily(
            "teleconsult_calls_connected",
            "Peer connections that connected, by the path their pages reported: direct, or "
            "relay (through the TURN server).",
            labels=["path"],
        )
        paths.add_metric(["direct"], counts.connected_direct)
        paths.add_metric(["relay"], counts.connected_relay)
        yield paths
        yield CounterMetricFamily(
            "teleconsult_call_ice_failures",
            "Peer connections whose ICE failed, as their pages reported (then restarted).",
            value=counts.ice_failures,
        )
        yield CounterMetricFamily(
            "teleconsult_call_reconnections",
            "Pages whose signaling came back after its WebSocket dropped, as they reported.",
            value=counts.reconnections,
        )
