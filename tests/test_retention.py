"""Retention with a frozen clock: after each period passes and the reconciler's retention
pass runs, exactly what should be gone is gone (on the store the suite runs on)."""

from __future__ import annotations

import asyncio
from typing import Any

from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    create,
    person,
    teleconsultation,
)

MANAGER = {"miauserid": "secretary-1", "miausergroups": "secretaries"}
LATER_PATIENT = person("patient-3", ["patient"], "Bo Ek")


async def listed(client: Client) -> list[str]:
    response = await client.get("/teleconsultations?state=cancelled", headers=MANAGER)
    cancelled = [item["id"] for item in (await response.json())["items"]]
    response = await client.get("/teleconsultations", headers=MANAGER)
    return sorted({*cancelled, *[item["id"] for item in (await response.json())["items"]]})


async def audit_ids(client: Client, room_id: str) -> list[str]:
    response = await client.get(f"/teleconsultation/{room_id}/audit", headers=MANAGER)
    assert response.status == 200
    return [item["action"] for item in (await response.json())["items"]]


async def mapped(client: Client) -> list[str]:
    users = client.app[SERVICES].store.users
    ids = ["doctor-1", "patient-1", "nurse-1", "patient-3", "sdk-user"]
    return [i for i in ids if await users.find_user("fake", i) is not None]


async def purge(client: Client) -> dict[str, int] | None:
    return await client.app[SERVICES].retention.run_once()


def purged(**counts: int) -> dict[str, int]:
    return {
        "teleconsultations": 0,
        "user_map": 0,
        "audit_entries": 0,
        "idempotency_keys": 0,
        "webhook_deliveries": 0,
        **counts,
    }


async def test_each_period_purges_exactly_what_is_due(
    make_client: MakeClient, clock: FrozenClock, log_lines: LogLines
) -> None:
    client = await make_client(
        MANAGER_GROUPS="secretaries", RETENTION_ENDED_DAYS="10", AUDIT_RETENTION_DAYS="60"
    )
    # Day 0 (2030-02-22): one to cancel, one that ends today, one months ahead.
    cancelled = await create(client, teleconsultation(2, DOCTOR, PATIENT), MANAGER)
    ends_today = await create(client, teleconsultation(2, DOCTOR, NURSE), MANAGER)
    ahead = teleconsultation(
        2, DOCTOR, LATER_PATIENT, start="2030-06-01T10:00:00Z", end="2030-06-01T11:00:00Z"
    )
    response = await client.post(
        "/teleconsultation", json=ahead, headers={**MANAGER, "Idempotency-Key": "k-1"}
    )
    assert response.status == 201
    kept = (await response.json())["roomId"]
    response = await client.delete(f"/teleconsultation/{cancelled}", headers=MANAGER)
    assert response.status == 204
    response = await client.post("/credentials", json={}, headers={"miauserid": "sdk-user"})
    assert response.status == 201
    everyone = ["doctor-1", "patient-1", "nurse-1", "patient-3", "sdk-user"]
    assert await mapped(client) == everyone
    assert await purge(client) == purged()  # nothing is due yet
    assert await listed(client) == sorted([cancelled, ends_today, kept])

    # Day 12: the one that ended is past RETENTION_ENDED_DAYS; its nurse is nobody else's.
    # The idempotency key (a day) has expired.
    clock.advance(days=12)
    assert await purge(client) == purged(teleconsultations=1, user_map=1, idempotency_keys=1)
    assert await listed(client) == sorted([cancelled, kept])
    assert await mapped(client) == ["doctor-1", "patient-1", "patient-3", "sdk-user"]
    assert await purge(client) is None  # at most once a minute

    # Day 31: the cancelled one is past RETENTION_TRASHED_DAYS (30).
    clock.advance(days=19)
    response = await client.patch(
        f"/teleconsultation/{kept}", json={"end_date": "2030-06-01T12:00:00Z"}, headers=MANAGER
    )
    assert response.status == 204
    assert await purge(client) == purged(teleconsultations=1, user_map=1)
    assert await listed(client) == [kept]
    assert await mapped(client) == ["doctor-1", "patient-3", "sdk-user"]
    # Its audit trail outlives it, until AUDIT_RETENTION_DAYS.
    assert await audit_ids(client, cancelled) == ["created", "cancelled"]

    # Day 61: audit entries of day 0 are past AUDIT_RETENTION_DAYS (60); day 31's stays.
    clock.advance(days=30)
    assert await purge(client) == purged(audit_entries=5)
    assert await audit_ids(client, cancelled) == []
    assert await audit_ids(client, kept) == ["updated"]
    assert await listed(client) == [kept]  # it has not ended: kept

    metrics = await (await client.get("/-/metrics")).text()
    for line in (
        'teleconsult_retention_purged_total{kind="teleconsultations"} 2.0',
        'teleconsult_retention_purged_total{kind="user_map"} 2.0',
        'teleconsult_retention_purged_total{kind="audit_entries"} 5.0',
        'teleconsult_retention_purged_total{kind="idempotency_keys"} 1.0',
    ):
        assert line in metrics
    logged = [line["msg"] for line in log_lines.parsed() if line["msg"].startswith("retention")]
    assert logged == [
        "retention: purged teleconsultations=1, user_map=1, audit_entries=0, "
        "idempotency_keys=1, webhook_deliveries=0",
        "retention: purged teleconsultations=1, user_map=1, audit_entries=0, "
        "idempotency_keys=0, webhook_deliveries=0",
        "retention: purged teleconsultations=0, user_map=0, audit_entries=5, "
        "idempotency_keys=0, webhook_deliveries=0",
    ]


async def test_ended_teleconsultations_are_kept_by_default(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries", RETENTION_TRASHED_DAYS="0")
    ended = await create(client, teleconsultation(2, DOCTOR, PATIENT), MANAGER)
    cancelled = await create(client, teleconsultation(2, DOCTOR, NURSE), MANAGER)
    response = await client.delete(f"/teleconsultation/{cancelled}", headers=MANAGER)
    assert response.status == 204
    clock.advance(seconds=1)
    # RETENTION_TRASHED_DAYS=0: the next pass deletes a cancelled one.
    assert await purge(client) == purged(teleconsultations=1, user_map=1)
    clock.advance(days=3650)
    result: Any = await purge(client)
    assert result["teleconsultations"] == 0
    assert await listed(client) == [ended]


async def test_one_replica_purges_at_a_time(make_client: MakeClient, clock: FrozenClock) -> None:
    first = await make_client(RETENTION_TRASHED_DAYS="0")
    second = await make_client(RETENTION_TRASHED_DAYS="0")  # the same database
    assert await purge(first) == purged()
    assert await purge(second) is None  # the first holds the lease
    clock.advance(minutes=2)
    assert await purge(second) is None  # and renews it at each of its passes
    assert await purge(first) == purged()
    clock.advance(minutes=6)  # the first stopped: its lease expires
    assert await purge(second) == purged()


async def test_the_reconciler_runs_the_retention_pass(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(RECONCILE_INTERVAL_MS="20", RETENTION_TRASHED_DAYS="0")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204
    clock.advance(minutes=2)  # past the reconciler's own first pass, which found nothing due
    doctor = {"miauserid": "doctor-1"}
    for _ in range(500):  # until the background pass has run (a few reconciler intervals)
        response = await client.get("/teleconsultations?state=cancelled", headers=doctor)
        if (await response.json())["items"] == []:
            break
        await asyncio.sleep(0.02)
    assert (await response.json())["items"] == []
