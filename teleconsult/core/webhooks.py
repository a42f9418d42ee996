"""Webhook delivery, in every replica: lease a due event, sign it, send it, record the outcome.

Each pass relays what the store has to relay (`Webhooks.relay`), then leases a
batch of deliveries, each the first pending one of its endpoint and
teleconsultation (so a teleconsultation's events go out in order), and sends
them concurrently. A lease is a conditional write in the store: one replica
sends a delivery while its lease lasts (longer than the timeout); a replica that
dies mid-send frees it when the lease runs out, and another sends it again with
the same `webhook-id` (at least once).

Every request is signed as the Standard Webhooks specification says, by the
`standardwebhooks` library: `webhook-id` (the event's stable id),
`webhook-timestamp` (the real time of the attempt, which receivers compare with
their own clock) and `webhook-signature`. A 2xx is success; 410 Gone turns the
endpoint off, in the store, so every replica stops; any other answer, a
redirect (never followed), a timeout or no connection is retried with
exponential backoff and jitter until WEBHOOK_MAX_AGE_MS has passed since the
event, then the delivery fails: counted, logged, listed by `GET
/webhooks/failed`, and sent again by `POST /webhooks/failed/{id}/retry`. Only
endpoint names and event ids reach the logs, never URLs, secrets or payloads.
Finished deliveries are deleted by the retention pass (`core.retention`), which runs
with or without endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import aiohttp
from standardwebhooks import Webhook

from teleconsult import __version__
from teleconsult.configuration.webhooks import Endpoint
from teleconsult.core.clock import Clock, utc_now
from teleconsult.errors import Unavailable
from teleconsult.observability.metrics import Metrics
from teleconsult.store.base import Delivery, Store

log = logging.getLogger(__name__)

BATCH = 20
"""Deliveries leased and sent at once by one replica."""
LEASE_MARGIN = timedelta(seconds=30)
"""A lease lasts the timeout plus this: the store writes around the request fit in it."""
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY = timedelta(hours=1)
USER_AGENT = f"teleconsult/{__version__} (webhooks)"
GONE = "the endpoint answered 410 Gone and was turned off"


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """5 s, 10 s, 20 s ... up to an hour after the `attempts`-th failure, each between half and
    all of it (jitter): receivers coming back are not hit by every replica at once."""
    ceiling = min(FIRST_RETRY * (1 << min(attempts, 20)), MAX_RETRY)
    return ceiling * (0.5 + rand() / 2)


class Deliverer:
    def __init__(
        self,
        store: Store,
        endpoints: Sequence[Endpoint],
        clock: Clock,
        metrics: Metrics,
        *,
        timeout: timedelta,
        max_age: timedelta,
        wall_clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.clock = clock
        self.metrics = metrics
        self.timeout = timeout
        self.max_age = max_age
        self.wall_clock = wall_clock
        """Signs `webhook-timestamp`: always the real time, which receivers check."""
        self.owner = uuid.uuid4().hex  # this replica, for leases
        self._signers = {endpoint.name: Webhook(endpoint.secret) for endpoint in endpoints}
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A change was written here: look now rather than at the next interval."""
        self._wake.set()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout.total_seconds()),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def run_once(self) -> int:
        """Relay, then lease and send one batch; return how much was done (0: nothing due)."""
        if not self.endpoints:
            return 0
        relayed = await self.store.webhooks.relay(BATCH)
        now = self.clock()
        off = await self._turned_off(now)
        claimed = await self.store.webhooks.claim(
            self.owner, now, now + self.timeout + LEASE_MARGIN, BATCH
        )
        outcomes = await asyncio.gather(
            *(self._deliver(delivery, off) for delivery in claimed), return_exceptions=True
        )
        for outcome in outcomes:  # each delivery ran to its end; then the first error counts
            if isinstance(outcome, BaseException):
                raise outcome
        return relayed + len(claimed)

    async def run_forever(self, interval_seconds: float) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.run_once() > 0:
                    pass  # there may be more due now
            except Unavailable as error:
                log.warning("webhooks: the store is unavailable: %s", error.message)
            except Exception:
                log.exception("webhooks: unexpected error; delivery will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_seconds)

    async def _turned_off(self, now: datetime) -> set[str]:
        """The configured endpoints turned off at their configured URL (a URL changed since
        the 410 turns it on again); their pending deliveries fail."""
        stored = await self.store.webhooks.turned_off()
        off = {
            name
            for name, url in stored.items()
            if name in self.endpoints and url == self.endpoints[name].url
        }
        for name in off:
            failed = await self.store.webhooks.fail_endpoint(name, now, GONE)
            if failed:
                self.metrics.webhook_deliveries.labels(name, "failed").inc(failed)
        return off

    async def _deliver(self, delivery: Delivery, off: set[str]) -> None:
        endpoint = self.endpoints.get(delivery.endpoint)
        if endpoint is None:
            await self._fail(delivery, "its endpoint is no longer configured")
            return
        if endpoint.name in off:
            await self._fail(delivery, GONE)
            return
        try:
            status = await self._send(endpoint, delivery)
        except TimeoutError:
            error = f"no answer within {self.timeout.total_seconds() * 1000:.0f} ms"
        except aiohttp.ClientError as failure:
            error = f"no answer: {type(failure).__name__}"  # its text names the host
        else:
            if 200 <= status < 300:
                await self._delivered(delivery)
                return
            if status == 410:
                await self._gone(endpoint, delivery)
                return
            error = f"HTTP {status}" + (
                " (redirects are not followed)" if 300 <= status < 400 else ""
            )
        await self._retry(delivery, error)

    async def _send(self, endpoint: Endpoint, delivery: Delivery) -> int:
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
        sent_at = self.wall_clock()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._signers[endpoint.name].sign(
                delivery.event_id, sent_at, body
            ),
        }
        async with self._client().post(
            endpoint.url, data=body.encode(), headers=headers, allow_redirects=False
        ) as response:
            return response.status

    async def _delivered(self, delivery: Delivery) -> None:
        now = self.clock()
        if await self.store.webhooks.delivered(delivery.id, self.owner, delivery.version, now):
            self.metrics.webhook_deliveries.labels(delivery.endpoint, "delivered").inc()
            self.metrics.webhook_delay.observe(max(0.0, (now - delivery.due_at).total_seconds()))
            log.debug(
                "webhook %s (%s) delivered to %s",
                delivery.event_id,
                delivery.type,
                delivery.endpoint,
            )
        else:  # a later change rewrote it meanwhile: it goes out again, as it is now
            log.debug("webhook %s was rewritten while it was sent", delivery.event_id)

    async def _retry(self, delivery: Delivery, error: str) -> None:
        now = self.clock()
        if now >= delivery.deadline:
            await self._fail(delivery, error)
            return
        next_at = min(now + backoff(delivery.attempts), delivery.deadline)
        if await self.store.webhooks.retry_later(
            delivery.id, self.owner, delivery.version, next_at, error
        ):
            self.metrics.webhook_deliveries.labels(delivery.endpoint, "retried").inc()
            log.info(
                "webhook %s (%s) to %s failed (%s, attempt %d); retried at %s",
                delivery.event_id, delivery.type, delivery.endpoint, error,
                delivery.attempts + 1, next_at.isoformat(),
            )  # fmt: skip

    async def _fail(self, delivery: Delivery, error: str) -> None:
        if await self.store.webhooks.fail(
            delivery.id, self.owner, delivery.version, self.clock(), error
        ):
            self.metrics.webhook_deliveries.labels(delivery.endpoint, "failed").inc()
            log.warning(
                "webhook %s (%s) to %s failed for good after %d attempts: %s; "
                "GET /webhooks/failed lists it",
                delivery.event_id, delivery.type, delivery.endpoint, delivery.attempts + 1, error,
            )  # fmt: skip

    async def _gone(self, endpoint: Endpoint, delivery: Delivery) -> None:
        await self.store.webhooks.turn_off(endpoint.name, endpoint.url, self.clock())
        self.metrics.webhook_deliveries.labels(endpoint.name, "gone").inc()
        log.warning(
            "webhook endpoint %s answered 410 Gone: it is turned off for every replica, and "
            "its events fail until a retry (POST /webhooks/failed/{id}/retry) turns it on",
            endpoint.name,
        )
        await self._fail(delivery, GONE)

    async def retry(self, delivery_id: str) -> Delivery | None:
        """Send a failed delivery again, due now, for another WEBHOOK_MAX_AGE_MS; its endpoint,
        if it was turned off, is on again. None when no failed delivery has this id."""
        now = self.clock()
        if not await self.store.webhooks.retry_failed(delivery_id, now, now + self.max_age):
            return None
        delivery = await self.store.webhooks.get(delivery_id)
        if delivery is not None and delivery.endpoint in self.endpoints:
            await self.store.webhooks.turn_on(delivery.endpoint)
        self.wake()
        return delivery
