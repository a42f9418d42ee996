"""Health: a store that answers says so."""

from __future__ import annotations

from tests.store_contract.helpers import Opener


async def test_ping(open_store: Opener) -> None:
    store = await open_store()
    await store.health.ping()


async def test_a_wrapped_store_wraps_each_aggregate_in_its_place(open_store: Opener) -> None:
    store = await open_store()

    wrapped = store.wrapped(lambda aggregate: ("wrapped", aggregate))

    assert wrapped.aggregates() == tuple(("wrapped", part) for part in store.aggregates())
    assert store.aggregates()[:2] == (store.records, store.users)
