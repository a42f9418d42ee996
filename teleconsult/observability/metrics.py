"""Prometheus metrics, in one registry per app (`Metrics.registry`), served at `/-/metrics`.

Providers and the store are measured from outside (`observability.measured`), so
every plugin and every store is measured alike without knowing about metrics.
Label values are operation names and outcomes, never ids.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from teleconsult.errors import ProviderError, Unavailable
from teleconsult.observability.measured import Observer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
            "Room jobs waiting in the outbox (read at each scrape).", registry=r,
        )  # fmt: skip
        self.oldest_job_age = Gauge(
            "teleconsult_reconciliation_oldest_job_age_seconds",
            "Age of the oldest job in the outbox; 0 when empty (read at each scrape).", registry=r,
        )  # fmt: skip
        self.jobs_done = Counter(
            "teleconsult_reconciliation_jobs", "Outbox jobs the reconciler finished.",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.teleconsultations = Gauge(
            "teleconsultations", "Stored teleconsultations by state (read at each scrape).",
            ["state"], registry=r,
        )  # fmt: skip

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
        def observe(operation: str, error: BaseException | None, seconds: float) -> None:
            outcome = "ok"
            if isinstance(error, Unavailable):
                outcome = "unavailable"
            elif isinstance(error, Exception):
                outcome = "error"
            elif error is not None:
                outcome = "cancelled"
            self.store_duration.labels(operation, outcome).observe(seconds)

        return observe
