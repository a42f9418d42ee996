"""Every call to a provider or to the store, timed and counted in one place.

`measured(inner, observe)` wraps any object: each coroutine method it has is
timed, and `observe(operation, error, seconds)` is told how it ended; other
attributes pass through untouched, so a wrapped provider still offers exactly
the capabilities the inner one has. No forwarding method is written by hand, so
a new protocol method is measured without a line of code here.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")
Observer = Callable[[str, BaseException | None, float], None]
"""Told, after each call: the operation (the method's name), its error if any, its seconds."""


def measured(inner: T, observe: Observer) -> T:
    """`inner`, with every coroutine method measured."""
    return cast(T, _Measured(inner, observe))


class _Measured:
    def __init__(self, inner: object, observe: Observer) -> None:
        self._inner = inner
        self._observe = observe
        self._calls: dict[str, tuple[Any, Callable[..., Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        """A coroutine method's measured form is made once and kept while the inner object
        has the same method (a test may replace one)."""
        attribute = getattr(self._inner, name)
        kept = self._calls.get(name)
        if kept is not None and kept[0] == attribute:
            return kept[1]
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        observe = self._observe

        async def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await attribute(*args, **kwargs)
            except BaseException as error:
                observe(name, error, time.perf_counter() - started)
                raise
            observe(name, None, time.perf_counter() - started)
            return result

        self._calls[name] = (attribute, call)
        return call

    def __repr__(self) -> str:
        return f"measured({self._inner!r})"
