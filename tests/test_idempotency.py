"""Idempotency-Key: a retried POST returns the first answer and does nothing more."""

from __future__ import annotations

import asyncio

import pytest

from teleconsult.api.idempotency import RUNNING_LEASE, key_scope
from teleconsult.errors import ProviderError
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES
from teleconsult.store.base import KeyClaim
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    create,
    error,
    fake_video,
    teleconsultation,
)


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_the_same_key_and_body_returns_the_first_answer(client: Client) -> None:
    body = teleconsultation(2, DOCTOR, PATIENT)
    first = await client.post("/teleconsultation", json=body, headers=keyed("k-1"))
    again = await client.post("/teleconsultation", json=body, headers=keyed("k-1"))

    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(fake_video(client).rooms) == 1  # one teleconsultation, one room


async def test_concurrent_retries_make_one_teleconsultation(client: Client) -> None:
    body = teleconsultation(2, DOCTOR, PATIENT)
    responses = await asyncio.gather(
        *(client.post("/teleconsultation", json=body, headers=keyed("k-2")) for _ in range(5))
    )
    statuses = sorted(response.status for response in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    ids = {(await r.json())["roomId"] for r in responses if r.status == 201}
    assert len(ids) == 1
    assert len(fake_video(client).rooms) == 1


async def test_the_same_key_with_another_body_is_a_422(client: Client) -> None:
    await client.post(
        "/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT), headers=keyed("k-3")
    )
    response = await client.post(
        "/teleconsultation", json=teleconsultation(2, DOCTOR, NURSE), headers=keyed("k-3")
    )
    assert response.status == 422
    assert await response.json() == error(
        422,
        "This Idempotency-Key was used for another request; use a new key for a new request.",
        "Unprocessable Entity",
    )


async def test_adding_a_participant_twice_with_one_key(client: Client) -> None:
    room_id = await create(client, teleconsultation(3, DOCTOR))
    path = f"/teleconsultation/{room_id}/participants/data"
    first = await client.post(path, json=PATIENT, headers=keyed("add-1"))
    again = await client.post(path, json=PATIENT, headers=keyed("add-1"))
    without_key = await client.post(path, json=PATIENT)

    assert (first.status, again.status) == (201, 201)
    assert without_key.status == 400  # a plain retry is refused: the patient is already in
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert [p.external_id for p in record.participants] == ["doctor-1", "patient-1"]


async def test_a_client_error_is_not_kept_with_the_key(client: Client, clock: FrozenClock) -> None:
    """A refused request changed nothing: its answer is not stored, a retry runs again."""
    body = teleconsultation(2, PATIENT, NURSE)  # no plus user
    first = await client.post("/teleconsultation", json=body, headers=keyed("k-4"))
    again = await client.post("/teleconsultation", json=body, headers=keyed("k-4"))
    assert first.status == again.status == 400
    assert await first.json() == await again.json()
    assert "Idempotent-Replayed" not in again.headers
    assert await client.app[SERVICES].store.idempotency.count_keys("public", clock.now) == 0


async def test_a_server_side_failure_frees_the_key_for_a_retry(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = fake_video(client)
    original = provider.create_room

    async def failing(spec: object) -> object:
        raise ProviderError("fake", "create a room", "timeout", "injected")

    monkeypatch.setattr(provider, "create_room", failing)
    body = teleconsultation(2, DOCTOR, PATIENT)
    first = await client.post("/teleconsultation", json=body, headers=keyed("k-5"))
    assert first.status == 504

    monkeypatch.setattr(provider, "create_room", original)
    retry = await client.post("/teleconsultation", json=body, headers=keyed("k-5"))
    assert retry.status == 201
    assert len(provider.rooms) == 1


async def test_keys_expire(make_client: MakeClient, clock: FrozenClock) -> None:
    client = await make_client(IDEMPOTENCY_KEY_TTL_MS="60000")
    body = teleconsultation(2, DOCTOR, PATIENT)
    first = await client.post("/teleconsultation", json=body, headers=keyed("k-6"))
    clock.advance(seconds=61)
    later = await client.post("/teleconsultation", json=body, headers=keyed("k-6"))
    assert (first.status, later.status) == (201, 201)
    assert (await first.json()) != (await later.json())  # a new teleconsultation


async def test_a_malformed_key_is_a_400(client: Client) -> None:
    response = await client.post(
        "/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT), headers=keyed("x" * 256)
    )
    assert response.status == 400
    assert await response.json() == error(
        400, "Idempotency-Key must be 1 to 255 visible ASCII characters.", path="Idempotency-Key"
    )


async def test_a_key_whose_request_died_frees_itself(client: Client, clock: FrozenClock) -> None:
    store = client.app[SERVICES].store
    # A request claimed the key, then its process died before finishing.
    held = await store.idempotency.claim_key(
        KeyClaim(
            key_scope("POST", "/teleconsultation", Caller(None), "k-7"),
            "public",
            "someone",
            "t-1",
            clock.now,
            clock.now + RUNNING_LEASE,
        )
    )
    assert held is None
    body = teleconsultation(2, DOCTOR, PATIENT)
    response = await client.post("/teleconsultation", json=body, headers=keyed("k-7"))
    assert response.status == 422  # held by another request, still in its lease

    clock.advance(minutes=11)
    response = await client.post("/teleconsultation", json=body, headers=keyed("k-7"))
    assert response.status == 201


async def test_a_409_is_not_kept_with_the_key(make_client: MakeClient, clock: FrozenClock) -> None:
    client = await make_client(IMMUTABLE_PERIOD_MS=str(4 * 3600 * 1000))  # locked once complete
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    path = f"/teleconsultation/{room_id}/participants/data"
    response = await client.post(path, json=NURSE, headers=keyed("k-8"))
    assert response.status == 409
    response = await client.post(path, json=NURSE, headers=keyed("k-8"))
    assert response.status == 409
    assert "Idempotent-Replayed" not in response.headers  # run again, not replayed


async def test_an_unknown_outcome_keeps_the_key(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from teleconsult.errors import Unavailable

    async def lost_acknowledgement(*args: object, **kwargs: object) -> None:
        raise Unavailable("The MongoDB store cannot be reached (AutoReconnect); retry later.")

    monkeypatch.setattr(client.app[SERVICES].store.records, "insert", lost_acknowledgement)
    body = teleconsultation(2, DOCTOR, PATIENT)
    first = await client.post("/teleconsultation", json=body, headers=keyed("k-9"))
    assert first.status == 503
    monkeypatch.undo()
    retry = await client.post("/teleconsultation", json=body, headers=keyed("k-9"))
    assert retry.status == 409  # the first may have written: the key holds until its lease ends
    assert await retry.json() == error(
        409,
        "A request with this Idempotency-Key is still being processed; retry it later.",
        code="idempotency_in_progress",
    )
