"""Prometheus metrics, and the wrappers that measure providers and the store from outside.

The core wraps whatever provider and store it was given in `Measured*` proxies,
so every plugin and every store is measured alike without knowing about
metrics. Metrics live in one registry per app (`Metrics.registry`), served at
`/-/metrics`; label values are operation names and outcomes, never ids.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from teleconsult.core.domain import Level, ProviderLimits, RoomSpec, Teleconsultation
from teleconsult.errors import ProviderError, Unavailable
from teleconsult.providers.protocols import (
    Caller,
    CreatedRoom,
    Credentials,
    Identity,
    IdentityProvider,
    ParticipantEntry,
    Upload,
    VideoProvider,
)
from teleconsult.store import Store
from teleconsult.store.base import KeyedAnswer, RoomJob

T = TypeVar("T")
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

    async def measure_call(
        self, kind: str, provider: str, operation: str, call: Callable[[], Awaitable[T]]
    ) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call()
        except ProviderError as error:
            outcome = error.kind
            raise
        except Exception:
            outcome = "refused"  # the provider declined the request (a 4xx of ours), or a bug
            raise
        finally:
            self.provider_calls.labels(kind, provider, operation, outcome).inc()
            self.provider_duration.labels(kind, provider, operation).observe(
                time.perf_counter() - started
            )

    async def measure_store(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call()
        except Unavailable:
            outcome = "unavailable"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self.store_duration.labels(operation, outcome).observe(time.perf_counter() - started)


class MeasuredVideo:
    """A video provider, measured: every call timed and counted, rooms counted."""

    def __init__(self, inner: VideoProvider, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name
        self.limits: ProviderLimits = inner.limits

    def _measure(self, operation: str, call: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return self.metrics.measure_call("video", self.name, operation, call)

    async def ensure_user(self, external_id: str, level: Level) -> str:
        return await self._measure(
            "ensure_user", lambda: self.inner.ensure_user(external_id, level)
        )

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        room = await self._measure("create_room", lambda: self.inner.create_room(spec))
        self.metrics.rooms_created.labels(self.name).inc()
        return room

    async def delete_room(self, provider_room_id: str) -> None:
        await self._measure("delete_room", lambda: self.inner.delete_room(provider_room_id))
        self.metrics.rooms_deleted.labels(self.name).inc()

    async def check(self) -> None:
        await self._measure("check", self.inner.check)

    def personal_link(self, link: str, language: str | None, background: bool) -> str:
        return self.inner.personal_link(link, language, background)

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        return await self._measure(
            "describe_room", lambda: self.inner.describe_room(provider_room_id)
        )

    async def create_credentials(self, provider_user_id: str, expires_in: int) -> Credentials:
        return await self._measure(
            "create_credentials",
            lambda: self.inner.create_credentials(provider_user_id, expires_in),
        )

    async def list_uploads(self, provider_room_id: str) -> list[str]:
        return await self._measure(
            "list_uploads", lambda: self.inner.list_uploads(provider_room_id)
        )

    async def delete_upload(self, key: str) -> None:
        await self._measure("delete_upload", lambda: self.inner.delete_upload(key))

    async def upload_background(self, upload: Upload) -> dict[str, object]:
        return await self._measure(
            "upload_background", lambda: self.inner.upload_background(upload)
        )

    async def set_default_background(self, alias: str) -> dict[str, object]:
        return await self._measure(
            "set_default_background", lambda: self.inner.set_default_background(alias)
        )

    async def close(self) -> None:
        await self.inner.close()


class MeasuredIdentity:
    def __init__(self, inner: IdentityProvider, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name

    @property
    def resolves_bare_ids(self) -> bool:
        return self.inner.resolves_bare_ids

    async def identify(self, entries: Sequence[ParticipantEntry], caller: Caller) -> list[Identity]:
        return await self.metrics.measure_call(
            "identity", self.name, "identify", lambda: self.inner.identify(entries, caller)
        )

    async def close(self) -> None:
        await self.inner.close()


class MeasuredStore:
    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def insert(self, teleconsultation: Teleconsultation) -> None:
        await self.metrics.measure_store("insert", lambda: self.inner.insert(teleconsultation))

    async def get(self, teleconsultation_id: str) -> Teleconsultation | None:
        return await self.metrics.measure_store("get", lambda: self.inner.get(teleconsultation_id))

    async def replace(self, teleconsultation: Teleconsultation, expected_version: int) -> None:
        await self.metrics.measure_store(
            "replace", lambda: self.inner.replace(teleconsultation, expected_version)
        )

    async def find_user(self, provider: str, external_id: str) -> str | None:
        return await self.metrics.measure_store(
            "find_user", lambda: self.inner.find_user(provider, external_id)
        )

    async def add_user(
        self, provider: str, external_id: str, provider_user_id: str, creator_id: str
    ) -> str:
        return await self.metrics.measure_store(
            "add_user",
            lambda: self.inner.add_user(provider, external_id, provider_user_id, creator_id),
        )

    async def find_external_id(self, provider: str, provider_user_id: str) -> str | None:
        return await self.metrics.measure_store(
            "find_external_id", lambda: self.inner.find_external_id(provider, provider_user_id)
        )

    async def claim_key(
        self,
        scope: str,
        caller: str,
        fingerprint: str,
        token: str,
        now: datetime,
        expires_at: datetime,
    ) -> KeyedAnswer | None:
        return await self.metrics.measure_store(
            "claim_key",
            lambda: self.inner.claim_key(scope, caller, fingerprint, token, now, expires_at),
        )

    async def count_keys(self, caller: str, now: datetime) -> int:
        return await self.metrics.measure_store(
            "count_keys", lambda: self.inner.count_keys(caller, now)
        )

    async def purge_expired_keys(self, now: datetime, limit: int) -> int:
        return await self.metrics.measure_store(
            "purge_expired_keys", lambda: self.inner.purge_expired_keys(now, limit)
        )

    async def finish_key(
        self, scope: str, token: str, status: int, body: str, expires_at: datetime
    ) -> None:
        await self.metrics.measure_store(
            "finish_key", lambda: self.inner.finish_key(scope, token, status, body, expires_at)
        )

    async def release_key(self, scope: str, token: str) -> None:
        await self.metrics.measure_store(
            "release_key", lambda: self.inner.release_key(scope, token)
        )

    async def get_any(self, teleconsultation_id: str) -> Teleconsultation | None:
        return await self.metrics.measure_store(
            "get_any", lambda: self.inner.get_any(teleconsultation_id)
        )

    async def add_job(self, job: RoomJob) -> None:
        await self.metrics.measure_store("add_job", lambda: self.inner.add_job(job))

    async def set_job_room(self, job_id: str, room_id: str) -> None:
        await self.metrics.measure_store(
            "set_job_room", lambda: self.inner.set_job_room(job_id, room_id)
        )

    async def finish_job(self, job_id: str) -> None:
        await self.metrics.measure_store("finish_job", lambda: self.inner.finish_job(job_id))

    async def retry_job(self, job_id: str, not_before: datetime, error: str) -> None:
        await self.metrics.measure_store(
            "retry_job", lambda: self.inner.retry_job(job_id, not_before, error)
        )

    async def claim_jobs(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[RoomJob]:
        return await self.metrics.measure_store(
            "claim_jobs", lambda: self.inner.claim_jobs(owner, now, lease_until, limit)
        )

    async def job_backlog(self) -> tuple[int, datetime | None]:
        return await self.metrics.measure_store("job_backlog", self.inner.job_backlog)

    async def count_by_state(self) -> dict[str, int]:
        return await self.metrics.measure_store("count_by_state", self.inner.count_by_state)

    async def ping(self) -> None:
        await self.metrics.measure_store("ping", self.inner.ping)

    async def close(self) -> None:
        await self.inner.close()
