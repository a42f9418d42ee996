"""Several replicas on one store: participants connected to different replicas still reach
each other, and a replica that stops or dies takes only its own pages with it.

Two apps in this process share the test's store; then two `teleconsult serve` processes
share one SQLite file, one stopped with SIGTERM or killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from teleconsult.errors import Unavailable
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    WEBRTC,
    FrozenClock,
    MakeClient,
    Served,
    closing,
    introduced,
    open_call,
    path_of,
    relay,
    served,
    teleconsultation,
    webrtc_call,
)
from tests.test_webrtc import provider, room_of


async def test_peers_on_two_replicas_signal_through_the_store(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT, NURSE)

    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(second, links["patient-1"])
    doctor_id, patient_id = await introduced(doctor, joined_doctor, joined_patient)
    await relay(patient, patient_id, doctor, doctor_id, "offer", "v=0 offer")
    await relay(doctor, doctor_id, patient, patient_id, "answer", "v=0 answer")
    nurse, joined_nurse = await open_call(second, links["nurse-1"])
    nurse_id = joined_nurse["self"]["id"]
    await nurse.close()
    assert (await doctor.receive_json(timeout=5))["type"] == "peer-joined"
    assert (await doctor.receive_json(timeout=5))["type"] == "peer-left"

    response = await first.delete(f"/teleconsultation/{room_id}")  # cancelled on one replica

    assert response.status == 204
    ended = {"type": "ended", "reason": "cancelled"}
    nurse_came_and_went = [
        {"type": "peer-joined", "peer": {"id": nurse_id, "name": "Ann Lee", "isAdmin": False}},
        {"type": "peer-left", "id": nurse_id},
    ]
    assert await closing(patient) == ([*nurse_came_and_went, ended], 4000, "call ended")
    assert await closing(doctor) == ([ended], 4000, "call ended")
    assert (await second.get(path_of(links["patient-1"]))).status == 410


async def test_a_participants_pages_are_reached_on_every_replica_at_once(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """What reaches a participant (say, their link revoked) reaches each page they have open:
    on the replica that says it at once, on the others within their poll interval."""
    first, second = await make_client(**WEBRTC), await make_client(**WEBRTC)
    room_id, links = await webrtc_call(first, clock, DOCTOR, PATIENT, NURSE)
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(second, links["patient-1"])
    await introduced(doctor, joined_doctor, joined_patient)
    rooms = provider(first).rooms
    room = await room_of(first, room_id)

    told = await rooms.tell_participant(room, "patient-1", {"type": "ended", "reason": "x"})
    assert await rooms.tell_participant(room, "doctor-1", {"type": "ended", "reason": "y"}) == 1

    assert told == 1
    assert await closing(patient) == ([{"type": "ended", "reason": "x"}], 4000, "call ended")
    assert await closing(doctor) == ([{"type": "ended", "reason": "y"}], 4000, "call ended")
    assert await rooms.tell_participant(room, "nurse-1", {"type": "ended"}) == 0  # no page


async def test_a_store_outage_delays_the_other_replicas_messages_and_loses_none(
    make_client: MakeClient,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While a replica cannot take its pages' mailboxes, what other replicas post waits in
    the store; then each message is delivered once. The outage is logged once."""
    first, second = await make_client(**WEBRTC), await make_client(**WEBRTC)
    _, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(second, links["patient-1"])
    doctor_id, patient_id = await introduced(doctor, joined_doctor, joined_patient)
    storage = provider(second).hub.storage

    async def refused(recipients: list[str]) -> list[tuple[str, dict[str, Any]]]:
        raise Unavailable("the store is down")

    monkeypatch.setattr(storage, "take_for", refused)
    await doctor.send_json({"type": "offer", "to": patient_id, "sdp": "v=0 waits"})
    with pytest.raises(TimeoutError):
        await patient.receive_json(timeout=0.5)  # 25 poll intervals
    monkeypatch.undo()

    assert await patient.receive_json(timeout=5) == {
        "type": "offer",
        "from": doctor_id,
        "sdp": "v=0 waits",
    }
    with pytest.raises(TimeoutError):
        await patient.receive_json(timeout=0.5)  # once
    hub_lines = [r.getMessage() for r in caplog.records if "signaling hub" in r.getMessage()]
    assert hub_lines == [
        "webrtc: the signaling hub cannot reach the store: the store is down",
        "webrtc: the signaling hub reaches the store again",
    ]
    await patient.close()
    await doctor.close()


# -- served processes --------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path, **extra: str) -> AsyncIterator[tuple[Served, Served]]:
    """Two `teleconsult serve` on one SQLite file, heartbeats every 200 ms."""
    environ = {
        "STORE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        **WEBRTC,
        "WEBRTC_HEARTBEAT_MS": "200",
        "LOG_LEVEL": "warn",
        **extra,
    }
    async with served(tmp_path, **environ) as first, served(tmp_path, **environ) as second:
        yield first, second


async def call_on(replicas: tuple[Served, Served]) -> dict[str, str]:
    """A call due now, made on the first replica; each participant's link by external id."""
    api = f"http://127.0.0.1:{replicas[0].port}"
    start = datetime.now(UTC).replace(microsecond=0)
    body = teleconsultation(
        2, DOCTOR, PATIENT, start=iso(start), end=iso(start + timedelta(hours=1))
    )
    async with aiohttp.ClientSession(api) as session:
        created = await session.post(
            "/teleconsultation", json=body, headers={"miauserid": "doctor-1"}
        )
        room_id = (await created.json())["roomId"]
        links = {}
        for user in ("doctor-1", "patient-1"):
            answer = await session.get(f"/teleconsultation/{room_id}", headers={"miauserid": user})
            links[user] = (await answer.json())["accessLinkURL"]
    return links


async def joined_on(
    session: aiohttp.ClientSession, replica: Served, link: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    ws = await session.ws_connect(f"http://127.0.0.1:{replica.port}{path_of(link)}/ws")
    await ws.send_json({"type": "join"})
    return ws, await ws.receive_json(timeout=10)


async def test_the_pages_of_a_replica_that_dies_are_dropped_by_the_others(
    tmp_path: Path,
) -> None:
    async with two_replicas(tmp_path) as (first, second), aiohttp.ClientSession() as session:
        links = await call_on((first, second))
        doctor, _ = await joined_on(session, first, links["doctor-1"])
        patient, joined = await joined_on(session, second, links["patient-1"])
        assert (await doctor.receive_json(timeout=10))["type"] == "peer-joined"

        first.process.send_signal(signal.SIGKILL)  # no goodbye: only its heartbeats stop

        assert await patient.receive_json(timeout=10) == {
            "type": "peer-left",
            "id": joined["peers"][0]["id"],
        }
        await patient.close()
    assert first.process.returncode == -signal.SIGKILL
    assert second.process.returncode == 0


async def test_a_stopping_replica_closes_its_calls_at_once_and_they_resume_elsewhere(
    tmp_path: Path,
) -> None:
    """SIGTERM closes the open WebSockets (1001) before the grace for requests in flight,
    which they would otherwise hold for SHUTDOWN_GRACE_MS (ten minutes here). Their seats are
    kept: the page resumes on the other replica as the same peer, and its peer is told
    nothing (its peer connection, and the media, carry on)."""
    grace = {"SHUTDOWN_GRACE_MS": "600000"}
    async with (
        two_replicas(tmp_path, **grace) as (first, second),
        aiohttp.ClientSession() as session,
    ):
        links = await call_on((first, second))
        doctor, joined_doctor = await joined_on(session, first, links["doctor-1"])
        patient, joined = await joined_on(session, second, links["patient-1"])
        assert (await doctor.receive_json(timeout=10))["type"] == "peer-joined"

        first.process.send_signal(signal.SIGTERM)

        assert await closing(doctor) == ([], 1001, "server shutting down; reconnect")
        assert await asyncio.wait_for(first.process.wait(), timeout=20) == 0
        doctor_id = joined_doctor["self"]["id"]
        again = await session.ws_connect(
            f"http://127.0.0.1:{second.port}{path_of(links['doctor-1'])}/ws"
        )
        await again.send_json({"type": "join", "resume": doctor_id})
        assert await again.receive_json(timeout=10) == {
            "type": "resumed",
            "self": joined_doctor["self"],
            "peers": [{"id": joined["self"]["id"], "name": "Jane Doe", "isAdmin": False}],
        }
        await patient.send_json({"type": "offer", "to": doctor_id, "sdp": "v=0 restart"})
        assert await again.receive_json(timeout=10) == {
            "type": "offer",
            "from": joined["self"]["id"],
            "sdp": "v=0 restart",
        }
        await again.close()
        assert await patient.receive_json(timeout=10) == {  # the first news it had of them
            "type": "peer-left",
            "id": doctor_id,
        }
        await patient.close()
