"""The token signing keys are fetched without stalling requests (issue #25, defect 8).

A JWKS whose key endpoint the test holds (`SigningKeys.gate`) shows what waits for a fetch
and what does not: requests whose `kid` is known answer while a fetch is held; a request
with an unknown `kid` waits for the fetch under way rather than starting another; a set is
renewed in the background before it expires. `asyncio.timeout(HANG)` only turns a request
that would wait for ever into a failure; nothing here measures time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fake_jwks import AUDIENCE, ISSUER, SigningKeys
from tests.helpers import (
    DOCTOR,
    PATIENT,
    AppClient,
    Client,
    FrozenClock,
    Refusal,
    Server,
    bearer,
    create,
    teleconsultation,
)

HANG = 10
"""Seconds after which a request still waiting counts as stalled (the tests fail then)."""


class Arrivals:
    """Counts the requests the app's handlers received. A handler runs without pausing until
    it waits for the keys, so once `reached(n)` returns, the n-th request waits there."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._changed.set()
        return await handler(request)

    async def reached(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await self._changed.wait()


@pytest.fixture
def signing() -> SigningKeys:
    keys = SigningKeys()
    keys.add("k1")
    keys.add("k2")
    keys.add("k3", publish=False)
    return keys


@pytest.fixture
def arrivals() -> Arrivals:
    return Arrivals()


@pytest.fixture
async def token_client(
    aiohttp_server: Server,
    app_client: AppClient,
    build_app: Callable[..., web.Application],
    signing: SigningKeys,
    arrivals: Arrivals,
) -> Client:
    """Verified tokens, keys trusted for 60 s (renewed from 30 s on)."""
    jwks = await aiohttp_server(signing.app())
    app = build_app(
        JWT_JWKS_URL=str(jwks.make_url("/.well-known/jwks.json")),
        JWT_AUDIENCE=AUDIENCE,
        JWT_ISSUER=ISSUER,
        JWT_JWKS_TTL_MS="60000",
    )
    app.middlewares.append(arrivals.middleware)
    return await app_client(app)


async def test_known_kids_never_wait_for_a_fetch_and_unknown_ones_share_one(
    token_client: Client, signing: SigningKeys, arrivals: Arrivals
) -> None:
    client = token_client
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token("k1"))
    )
    path = f"/teleconsultation/{room_id}"
    signing.published.append("k3")  # the issuer rotates a key in; we have not seen it yet
    signing.gate.clear()  # and its JWKS answers slowly

    async with asyncio.timeout(HANG):
        first = asyncio.create_task(client.get(path, headers=bearer(signing.token("k3"))))
        await signing.held.wait()  # the unknown kid fetches the keys again
        known = await asyncio.gather(
            *(client.get(path, headers=bearer(signing.token("k1"))) for _ in range(5))
        )
        assert [response.status for response in known] == [200] * 5
        assert not first.done()  # the five answered while the fetch is held

        second = asyncio.create_task(client.get(path, headers=bearer(signing.token("k3"))))
        await arrivals.reached(arrivals.count + 1)  # it waits for the fetch under way
        signing.gate.set()
        assert [(await first).status, (await second).status] == [200, 200]

    assert signing.fetches == 2  # the first, then one for both unknown kids


async def test_the_keys_are_renewed_in_the_background_before_they_expire(
    token_client: Client, signing: SigningKeys, arrivals: Arrivals, clock: FrozenClock
) -> None:
    client = token_client
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token("k1"))
    )  # keys fetched: trusted for 60 s
    path = f"/teleconsultation/{room_id}"
    signing.gate.clear()
    clock.advance(seconds=40)

    async with asyncio.timeout(HANG):
        response = await client.get(path, headers=bearer(signing.token("k1")))
        assert response.status == 200  # answered with the current keys
        await signing.held.wait()  # while it started their renewal
        known = await asyncio.gather(
            *(client.get(path, headers=bearer(signing.token("k2"))) for _ in range(5))
        )
        assert [response.status for response in known] == [200] * 5
        assert signing.fetches == 2  # one renewal, however many requests came

        unknown = asyncio.create_task(client.get(path, headers=bearer(signing.token("k3"))))
        await arrivals.reached(arrivals.count + 1)  # it waits for the renewal under way
        signing.gate.set()
        assert (await unknown).status == 401
    assert signing.fetches == 2

    clock.advance(seconds=25)  # the first set expired; the renewed one serves
    response = await client.get(path, headers=bearer(signing.token("k1")))
    assert response.status == 200
    assert signing.fetches == 2


def test_a_jwks_ttl_below_the_floor_stops_the_start(serve_refusal: Refusal) -> None:
    """A TTL under 30 s used to become 30 s silently, breaking the README's "within this time"."""
    assert serve_refusal({"JWT_JWKS_TTL_MS": "1000"}) == (
        "teleconsult: configuration error: JWT_JWKS_TTL_MS must be at least 30000 and at most "
        "86400000; got 1000.\n"
    )
