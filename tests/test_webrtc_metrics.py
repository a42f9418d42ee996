"""What an operator reads of the `webrtc` calls at GET /-/metrics: pages connected, calls in
progress (each counted once across replicas), the paths and ICE failures the pages report,
their reconnections; and a WebSocket counted as a request but never timed as one."""

from __future__ import annotations

import asyncio

from tests.helpers import (
    DOCTOR,
    PATIENT,
    WEBRTC,
    Client,
    FrozenClock,
    MakeClient,
    closing,
    introduced,
    open_call,
    relay,
    webrtc_call,
)

CALL_SERIES = (
    "teleconsult_call_pages_connected ",
    "teleconsult_calls_in_progress ",
    "teleconsult_calls_connected_total{",
    "teleconsult_call_ice_failures_total ",
    "teleconsult_call_reconnections_total ",
)
SOCKET = 'method="GET",route="/webrtc/call/{credential}/ws"'


async def series(client: Client, *prefixes: str) -> list[str]:
    """The lines of the scrape that start with one of `prefixes`, in the scrape's order."""
    response = await client.get("/-/metrics")
    assert response.status == 200
    lines = (await response.text()).splitlines()
    return [line for line in lines if line.startswith(prefixes)]


async def test_the_calls_and_what_their_pages_report_are_metrics(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    assert await series(client, *CALL_SERIES) == [
        "teleconsult_call_pages_connected 0.0",
        "teleconsult_calls_in_progress 0.0",
        'teleconsult_calls_connected_total{path="direct"} 0.0',
        'teleconsult_calls_connected_total{path="relay"} 0.0',
        "teleconsult_call_ice_failures_total 0.0",
        "teleconsult_call_reconnections_total 0.0",
    ]
    doctor, joined_doctor = await open_call(client, links["doctor-1"])
    patient, joined_patient = await open_call(client, links["patient-1"])
    doctor_id, patient_id = await introduced(doctor, joined_doctor, joined_patient)

    await patient.send_json({"type": "report", "event": "ice-failed"})
    await patient.send_json({"type": "report", "event": "connected", "path": "relay"})
    await patient.send_json({"type": "report", "event": "reconnected"})
    await relay(patient, patient_id, doctor, doctor_id, "offer", "v=0")  # after the reports
    await doctor.send_json({"type": "report", "event": "connected", "path": "direct"})
    await relay(doctor, doctor_id, patient, patient_id, "answer", "v=0")

    assert await series(client, *CALL_SERIES) == [
        "teleconsult_call_pages_connected 2.0",
        "teleconsult_calls_in_progress 1.0",
        'teleconsult_calls_connected_total{path="direct"} 1.0',
        'teleconsult_calls_connected_total{path="relay"} 1.0',
        "teleconsult_call_ice_failures_total 1.0",
        "teleconsult_call_reconnections_total 1.0",
    ]
    await patient.close()
    await doctor.close()


async def test_a_call_across_two_replicas_is_counted_once(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    first, second = await make_client(**WEBRTC), await make_client(**WEBRTC)
    _, links = await webrtc_call(first, clock, DOCTOR, PATIENT)
    doctor, joined_doctor = await open_call(first, links["doctor-1"])
    patient, joined_patient = await open_call(second, links["patient-1"])
    await introduced(doctor, joined_doctor, joined_patient)  # each page knows the other

    counted = [await series(replica, *CALL_SERIES[:2]) for replica in (first, second)]

    assert sorted(counted) == [
        ["teleconsult_call_pages_connected 1.0", "teleconsult_calls_in_progress 0.0"],
        ["teleconsult_call_pages_connected 1.0", "teleconsult_calls_in_progress 1.0"],
    ]
    await patient.close()
    await doctor.close()


async def test_an_invalid_report_closes_its_connection(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, _ = await open_call(client, links["doctor-1"])

    await doctor.send_json({"type": "report", "event": "connected", "path": "satellite"})

    assert await closing(doctor) == ([], 1008, "invalid report path")


async def test_a_websocket_is_counted_but_not_timed_as_a_request(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """A call's WebSocket lasts the call: timed as a request, it would be a 28-minute one."""
    client = await make_client(**WEBRTC)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, _ = await open_call(client, links["doctor-1"])
    await doctor.close()

    counted = f"teleconsult_http_requests_total{{{SOCKET},status=" + '"101"}'
    gone = "teleconsult_call_pages_connected 0.0"
    duration = "teleconsult_http_request_duration_seconds_count"
    for _ in range(100):  # the handler ends, and the page leaves its room, after the close
        found = await series(client, counted, duration, CALL_SERIES[0])
        if f"{counted} 1.0" in found and gone in found:
            break
        await asyncio.sleep(0.05)

    assert f"{counted} 1.0" in found
    assert gone in found
    assert [line for line in found if SOCKET in line and duration in line] == []
