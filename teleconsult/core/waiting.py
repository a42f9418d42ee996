"""Holds `GET ?waitSeconds=N` until its teleconsultation may have changed, without polling it.

A waiting GET registers here with the record version it saw and, when its room
exists, the lock time; it is woken (and then answers as a plain GET would, or
waits again) by the first of:
- a timer at the lock time (`loop.call_later`: no work until then);
- a write made by this replica (`changed`, called by the service after each
  write it makes);
- one refresh pass for the whole replica every WAIT_REFRESH_MS, which runs only
  while something waits: it reads the versions of every watched record in one
  store query (`Records.versions`), and wakes the waiters whose record changed
  on another replica, or whose lock time the service's clock has reached.
A waiting request costs a future and a timer; the replica as a whole costs one
indexed query per interval, however many wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from teleconsult.core.clock import Clock
from teleconsult.errors import Unavailable
from teleconsult.store.base import Records

MAX_WAIT_SECONDS = 30
"""The longest a GET may hold its answer (`wait`): below the usual 60 s proxy timeouts."""
VERSIONS_BATCH = 500
"""Records whose versions one store query reads."""

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Waiter:
    version: int
    opens_at: datetime | None
    woken: asyncio.Future[None] = field(repr=False)

    def wake(self) -> None:
        if not self.woken.done():
            self.woken.set_result(None)


class LinkWaiter:
    def __init__(self, records: Records, clock: Clock, refresh_seconds: float) -> None:
        self.records = records
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._waiters: dict[str, set[_Waiter]] = {}
        self._refreshing: asyncio.Task[None] | None = None

    async def wait(
        self,
        teleconsultation_id: str,
        version: int,
        opens_at: datetime | None,
        seconds: float,
    ) -> None:
        """Return when the record may have changed since `version`, at `opens_at`, or after
        `seconds`, whichever comes first."""
        if opens_at is not None:
            seconds = min(seconds, max(0.0, (opens_at - self.clock()).total_seconds()))
        if seconds <= 0:
            return
        waiter = _Waiter(version, opens_at, asyncio.get_running_loop().create_future())
        waiters = self._waiters.setdefault(teleconsultation_id, set())
        waiters.add(waiter)
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh_while_waited())
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter.woken
        finally:
            waiters.discard(waiter)
            if not waiters and self._waiters.get(teleconsultation_id) is waiters:
                del self._waiters[teleconsultation_id]

    def changed(self, teleconsultation_id: str) -> None:
        """This replica wrote the record: its waiters look again now."""
        for waiter in self._waiters.get(teleconsultation_id, ()):
            waiter.wake()

    def wake_all(self) -> None:
        """The server is stopping: every waiting GET answers now."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()

    async def close(self) -> None:
        self.wake_all()
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refreshing

    async def refresh(self) -> None:
        """One pass: wake the waiters whose record changed elsewhere or whose lock time the
        clock has reached."""
        ids = list(self._waiters)
        versions: dict[str, int] = {}
        for start in range(0, len(ids), VERSIONS_BATCH):
            versions.update(await self.records.versions(ids[start : start + VERSIONS_BATCH]))
        now = self.clock()
        for teleconsultation_id in ids:
            for waiter in list(self._waiters.get(teleconsultation_id, ())):
                opened = waiter.opens_at is not None and waiter.opens_at <= now
                if opened or versions.get(teleconsultation_id) != waiter.version:
                    waiter.wake()

    async def _refresh_while_waited(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Unavailable as error:
                log.warning("waiting GETs: the store is unavailable: %s", error.message)
            except Exception:
                log.exception("waiting GETs: unexpected error; the next pass tries again")
