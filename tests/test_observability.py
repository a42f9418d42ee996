"""Request ids, "request completed" lines, redaction, metrics and the check-up probe."""

from __future__ import annotations

import re

import pytest

from teleconsult import __version__
from teleconsult.errors import ProviderError, Unavailable
from teleconsult.observability import logs, redaction
from teleconsult.services import SERVICES
from tests.fakes.kaleyra import FakeKaleyra, Fault
from tests.helpers import (
    DOCTOR,
    PATIENT,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    bandyer_env,
    create,
    first_line,
    join,
    person,
    redactor_of,
    teleconsultation,
)


async def test_the_request_id_is_taken_or_made_and_returned(client: Client) -> None:
    response = await client.get("/-/healthz", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"

    response = await client.get("/-/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])

    response = await client.get("/-/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_one_request_completed_line_per_request(client: Client, log_lines: LogLines) -> None:
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={"x-request-id": "req-42"},
    )
    room_id = (await response.json())["roomId"]
    await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "nobody"})

    completed = [line for line in log_lines.parsed() if line["msg"] == "request completed"]
    assert [(c["req"], c["res"], c["level"]) for c in completed] == [
        (
            {"method": "POST", "url": "/teleconsultation", "route": "/teleconsultation"},
            {"statusCode": 201},
            30,
        ),
        (
            {
                "method": "GET",
                "url": f"/teleconsultation/{room_id}",
                "route": "/teleconsultation/{roomId}",
            },
            {"statusCode": 401},
            30,
        ),
    ]
    assert completed[0]["reqId"] == "req-42"
    assert all(
        isinstance(c["responseTime"], float) and isinstance(c["time"], int) for c in completed
    )


async def test_probes_are_logged_at_debug(client: Client, log_lines: LogLines) -> None:
    await client.get("/-/ready")
    [line] = [line for line in log_lines.parsed() if line["msg"] == "request completed"]
    assert line["level"] == 20


async def test_redaction_of_known_shapes() -> None:
    """Async, so the request scope it begins stays in its own task's context: a scope begun
    in the test runner's context would be inherited by the tests after it."""
    logs.begin_request("r1", redactor_of())  # the installed providers' links' shapes
    redaction.sensitive(["Jane Doe"])
    text = (
        "join https://acme.bandyer.com/eu/direct-rest-call-handler/abc123 or "
        "http://127.0.0.1:3000/fake-video/join/Xyz_9 path /fake-video/join/Xyz_9; "
        "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl; "
        "apikey=ak_live_123 client_secret: 's3cr3t' mongodb://user:pa55@db/x; name Jane Doe"
    )
    assert redaction.redact(text) == (
        "join [redacted] or [redacted] path [redacted]; "
        "Authorization: [redacted]; "
        "apikey=[redacted] client_secret: '[redacted]' mongodb://[redacted]@db/x; name [redacted]"
    )


async def test_no_secret_or_name_reaches_a_log_line(
    make_client: MakeClient,
    kaleyra_url: str,
    kaleyra: FakeKaleyra,
    clock: FrozenClock,
    log_lines: LogLines,
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url, LOG_LEVEL="trace"))
    secrets_and_names = {"test-api-key", "Joe Smith", "Jane Doe", "Ann Lee", "session-cookie-42"}
    cookie = {"Cookie": "sid=session-cookie-42", "Authorization": "Bearer opaque-token-77"}
    secrets_and_names.add("opaque-token-77")

    room_id = await create(client, teleconsultation(3, DOCTOR, PATIENT))
    kaleyra.fail("create_room", Fault(status=500))
    nurse = person("nurse-1", ["patient"], "Ann Lee")
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data", json=nurse, headers=cookie
    )
    assert response.status == 502
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data", json=nurse, headers=cookie
    )
    assert response.status == 201
    clock.advance(hours=4)
    for user in ("doctor-1", "patient-1", "nurse-1"):
        status, body = await join(client, room_id, user)
        assert status == 200
        secrets_and_names.add(body["accessLinkURL"])
    response = await client.post(
        "/teleconsultation",
        data=b'{"fullName": "Jane Doe"',
        headers={"Content-Type": "application/json", **cookie},
    )
    assert response.status == 400
    response = await client.delete(f"/teleconsultation/{room_id}", headers=cookie)
    assert response.status == 204

    assert log_lines.parsed(), "the flow was logged"
    leaked = sorted(value for value in secrets_and_names if value in log_lines.text)
    assert leaked == []


async def test_a_malformed_header_with_a_token_is_not_logged_raw(
    client: Client, log_lines: LogLines
) -> None:
    assert client.server.port is not None
    status_line = await first_line(
        client.server.port,
        b"GET /-/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer leaky\x01secret\r\n\r\n",
    )
    assert b" 400 " in status_line
    assert "leaky" not in log_lines.text
    assert "secret" not in log_lines.text.replace("[redacted]", "")


async def test_metrics(client: Client) -> None:
    await create(client, teleconsultation(2, DOCTOR, PATIENT))
    await create(client, teleconsultation(3, DOCTOR))
    await client.get("/teleconsultation/0123456789abcdef01234567", headers={"miauserid": "x"})
    await client.app[SERVICES].store_gauges.refresh()  # as the background task does

    response = await client.get("/-/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    for expected in [
        'teleconsult_http_requests_total{method="POST",route="/teleconsultation",status="201"} 2.0',
        'teleconsult_http_requests_total{method="GET",route="/teleconsultation/{roomId}",status="404"} 1.0',
        'teleconsult_http_request_duration_seconds_count{method="POST",route="/teleconsultation"} 2.0',
        'teleconsult_provider_calls_total{kind="video",operation="ensure_user",outcome="ok",provider="fake"} 2.0',
        'teleconsult_provider_calls_total{kind="identity",operation="identify",outcome="ok",provider="static"} 2.0',
        'teleconsult_provider_calls_total{kind="video",operation="create_room",outcome="ok",provider="fake"} 1.0',
        'teleconsult_rooms_created_total{provider="fake"} 1.0',
        'teleconsult_teleconsultations{state="room_ready"} 1.0',
        'teleconsult_teleconsultations{state="waiting_for_participants"} 1.0',
        'teleconsult_teleconsultations{state="cancelled"} 0.0',
        'teleconsult_store_operation_duration_seconds_count{operation="insert",outcome="ok"} 2.0',
        'teleconsult_http_request_duration_seconds_bucket{le="0.0005",method="POST",route="/teleconsultation"}',
        f'teleconsult_build_info{{version="{__version__}"}} 1.0',
        "process_resident_memory_bytes ",
        "teleconsult_reconciliation_pending_jobs 0.0",
    ]:
        assert expected in text, expected
    names = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    assert [name for name in names if not name.startswith(("teleconsult_", "process_"))] == []
    assert re.findall(r"^\w+_created[{ ]", text, re.MULTILINE) == []  # no `_created` series


async def test_a_scrape_never_waits_on_the_store(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During an outage a scrape answers at once with the last counts and their age."""
    await create(client, teleconsultation(2, DOCTOR, PATIENT))
    gauges = client.app[SERVICES].store_gauges
    await gauges.refresh()
    calls: list[str] = []

    async def down() -> dict[str, int]:
        calls.append("count_by_state")
        raise Unavailable("The MongoDB store cannot be reached (injected); retry later.")

    monkeypatch.setattr(client.app[SERVICES].store.records, "count_by_state", down)
    response = await client.get("/-/metrics")
    assert response.status == 200
    text = await response.text()
    assert calls == []  # the scrape asked the store nothing
    assert 'teleconsult_teleconsultations{state="room_ready"} 1.0' in text
    age = re.search(r"^teleconsult_store_gauges_age_seconds (\S+)$", text, re.MULTILINE)
    assert age is not None
    assert float(age[1]) >= 0

    await gauges.refresh()  # the background refresh fails: the last counts stay
    assert calls == ["count_by_state"]
    text = await (await client.get("/-/metrics")).text()
    assert 'teleconsult_teleconsultations{state="room_ready"} 1.0' in text


async def test_failed_provider_calls_are_counted_by_outcome(
    make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url))
    kaleyra.fail("create_room", Fault(delay=1.0))
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 504
    text = await (await client.get("/-/metrics")).text()
    assert (
        'teleconsult_provider_calls_total{kind="video",operation="create_room",outcome="timeout",provider="bandyer"} 1.0'
        in text
    )


async def test_check_up(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"status": "OK", "name": "teleconsult", "version": __version__}
    response = await client.get("/-/check-up")
    assert (response.status, await response.json()) == (200, body)

    async def unreachable() -> None:
        raise ProviderError("fake", "check", "unreachable", "injected")

    monkeypatch.setattr(client.app[SERVICES].video, "check", unreachable)
    response = await client.get("/-/check-up")
    assert (response.status, await response.json()) == (503, {**body, "status": "KO"})
    assert (await client.get("/-/ready")).status == 200  # readiness ignores the provider


async def test_a_join_page_request_does_not_log_its_link(
    client: Client, clock: FrozenClock, log_lines: LogLines
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)
    _, body = await join(client, room_id, "patient-1")
    code = body["accessLinkURL"].split("/fake-video/join/")[1].split("?")[0]

    response = await client.get(f"/fake-video/join/{code}")

    assert response.status == 200
    [completed] = [
        line
        for line in log_lines.parsed()
        if line.get("req", {}).get("route") == "/fake-video/join/{code}"
    ]
    assert completed["req"]["url"] == "[redacted]"
    assert code not in log_lines.text
