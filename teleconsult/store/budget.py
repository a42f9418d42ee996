"""One time budget per request for all its store calls.

A store call waits at most the store's timeout (MONGODB_TIMEOUT_MS,
SQLITE_BUSY_TIMEOUT_MS); a request making several calls in turn would otherwise wait
that long again at each. Within a request (`request_budget`, entered by the API's
middleware) each call may take only what the request's earlier calls left of it, so
the request answers 503 within the store's timeout however many calls it makes. Only
the time spent in store calls is counted: reading a body, calling a provider or a long
poll's wait are not store waits.

The budget is the request's own task's: a task it starts is not charged, since some
outlive the request (the waiter's refresh, the audit writer, a call's signaling); each
of their calls has the store's whole timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import monotonic


@dataclass
class _Budget:
    owner: asyncio.Task[object] | None
    spent: float = 0.0


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "store_budget", default=None
)


@contextmanager
def request_budget() -> Iterator[None]:
    """The store calls made inside, by this task, share one budget."""
    token = _BUDGET.set(_Budget(asyncio.current_task()))
    try:
        yield
    finally:
        _BUDGET.reset(token)


@contextmanager
def store_call(timeout: float) -> Iterator[float]:
    """The seconds the store call inside may take: `timeout`, less what the request's
    earlier store calls took (nothing left: zero or less); the call's time is charged."""
    budget = _BUDGET.get()
    if budget is None or budget.owner is not asyncio.current_task():
        yield timeout
        return
    started = monotonic()
    try:
        yield timeout - budget.spent
    finally:
        budget.spent += monotonic() - started
