"""The audit trail: every link and credential handed out and every change, with who, when,
from where and which request; read by managers only; never a link, a token or a name."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from teleconsult.api.client_address import client_address
from teleconsult.core.audit import AuditLog, RequestTrace
from teleconsult.errors import Unavailable
from teleconsult.services import SERVICES
from teleconsult.store.audit import AuditEntry
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
    provider_room,
    teleconsultation,
)

MANAGER = {"miauserid": "secretary-1", "miausergroups": "secretaries"}
AT = "2030-02-22T12:00:00.000Z"
LATER = "2030-02-22T16:00:00.000Z"


def who(user: str, request_id: str, **extra: str) -> dict[str, str]:
    return {"miauserid": user, "x-request-id": request_id, "User-Agent": "clinic-app/2.1", **extra}


async def trail(client: Client, room_id: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/teleconsultation/{room_id}/audit{query}", headers=MANAGER)
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    assert response.headers["Cache-Control"] == "no-store"
    return body


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all(len(item.pop("id")) == 24 for item in items)
    return items


def entry(
    at: str,
    action: str,
    actor: str,
    request_id: str,
    *,
    participant: str | None = None,
    fields: list[str] | None = None,
    address: str = "127.0.0.1",
) -> dict[str, Any]:
    return {
        "at": at,
        "action": action,
        "actor": actor,
        "participant": participant,
        "fields": fields or [],
        "requestId": request_id,
        "clientAddress": address,
        "userAgent": "clinic-app/2.1",
    }


async def test_every_change_and_link_is_in_the_trail(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries", TELECONSULTATION_DELETE_UPLOADS="true")
    manager = {**MANAGER, "User-Agent": "clinic-app/2.1"}
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(3, DOCTOR, PATIENT),
        headers={**manager, "x-request-id": "req-create"},
    )
    assert response.status == 201
    room_id = (await response.json())["roomId"]
    response = await client.patch(
        f"/teleconsultation/{room_id}",
        json={"start_date": "2030-02-22T15:00:00.000Z", "duration_in_seconds": 3600},
        headers={**manager, "x-request-id": "req-move"},
    )
    assert response.status == 204
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data",
        json=NURSE,
        headers={**manager, "x-request-id": "req-add"},
    )
    assert response.status == 201
    clock.advance(hours=4)  # the call has begun: links are handed out
    links = []
    for user, request_id in (("doctor-1", "req-join-1"), ("patient-1", "req-join-2")):
        response = await client.get(f"/teleconsultation/{room_id}", headers=who(user, request_id))
        assert response.status == 200
        links.append((await response.json())["accessLinkURL"])
    fake_video(client).uploads[await provider_room(client, room_id)] = ["a.pdf"]
    response = await client.delete(
        f"/teleconsultation/{room_id}/uploads", headers={**manager, "x-request-id": "req-files"}
    )
    assert response.status == 200
    response = await client.delete(
        f"/teleconsultation/{room_id}", headers={**manager, "x-request-id": "req-cancel"}
    )
    assert response.status == 204

    body = await trail(client, room_id)
    assert body["nextCursor"] is None
    assert without_ids(body["items"]) == [
        entry(AT, "created", "secretary-1", "req-create", fields=["end_date", "participants", "start_date"]),
        entry(AT, "updated", "secretary-1", "req-move", fields=["duration_in_seconds", "start_date"]),
        entry(AT, "participant_added", "secretary-1", "req-add", participant="nurse-1"),
        entry(LATER, "link_handed_out", "doctor-1", "req-join-1", participant="doctor-1"),
        entry(LATER, "link_handed_out", "patient-1", "req-join-2", participant="patient-1"),
        entry(LATER, "uploads_deleted", "secretary-1", "req-files"),
        entry(LATER, "cancelled", "secretary-1", "req-cancel"),
    ]  # fmt: skip
    # Never a link, a token or a name; the whole answer is searched.
    text = await (await client.get(f"/teleconsultation/{room_id}/audit", headers=MANAGER)).text()
    for secret in (*links, "Joe Smith", "Jane Doe", "Ann Lee", "fake-token"):
        assert secret not in text
    for link in links:
        assert link.split("?")[0].rsplit("/", 1)[-1] not in text


async def test_sdk_credentials_are_recorded_without_the_token(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[AuditEntry] = []
    store_audit = client.app[SERVICES].store.audit
    append = store_audit.append

    async def spy(entries: list[tuple[AuditEntry, Any]]) -> None:
        written.extend(entry for entry, _ in entries)
        await append(entries)

    monkeypatch.setattr(store_audit, "append", spy)
    response = await client.post(
        "/credentials",
        json={},
        headers=who("doctor-1", "req-sdk", **{"X-Forwarded-For": "1.2.3.4"}),
    )
    assert response.status == 201
    token = (await response.json())["accessToken"]
    [recorded] = written
    assert (recorded.action, recorded.teleconsultation_id, recorded.actor) == (
        "credentials_handed_out",
        None,
        "doctor-1",
    )
    assert (recorded.participant, recorded.request_id, recorded.client_address) == (
        "doctor-1",
        "req-sdk",
        "127.0.0.1",  # no trusted proxy: the header is not believed
    )
    assert token not in repr(recorded)


@pytest.mark.parametrize(
    ("trusted", "forwarded", "recorded"),
    [
        ("", "198.51.100.7", "127.0.0.1"),
        ("127.0.0.0/8", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.0/8, 10.0.0.0/8", "203.0.113.9, 198.51.100.7, 10.1.2.3", "198.51.100.7"),
        ("127.0.0.0/8", None, "127.0.0.1"),
    ],
)
async def test_the_client_address_comes_from_trusted_proxies_only(
    make_client: MakeClient, trusted: str, forwarded: str | None, recorded: str
) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries", TRUSTED_PROXIES=trusted)
    headers = {**MANAGER, "x-request-id": "req-1", "User-Agent": "clinic-app/2.1"}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    room_id = await create(client, teleconsultation(2, DOCTOR), headers)
    [item] = without_ids((await trail(client, room_id))["items"])
    assert item == entry(
        AT,
        "created",
        "secretary-1",
        "req-1",
        fields=["end_date", "participants", "start_date"],
        address=recorded,
    )


def test_client_address_rules() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert client_address("10.0.0.1", ["192.0.2.1"], trusted) == "192.0.2.1"
    assert client_address("192.0.2.50", ["192.0.2.1"], trusted) == "192.0.2.50"  # untrusted peer
    assert client_address("10.0.0.1", ["192.0.2.1, 10.0.0.2", "10.0.0.3"], trusted) == "192.0.2.1"
    assert client_address("10.0.0.1", ["10.0.0.9, 10.0.0.2"], trusted) == "10.0.0.9"  # all ours
    assert client_address("10.0.0.1", ["evil, 10.0.0.2"], trusted) == "10.0.0.2"  # garbage stops
    assert client_address("10.0.0.1", [], trusted) == "10.0.0.1"
    assert client_address("fd00::1", ["2001:db8::1"], trusted) == "2001:db8::1"
    assert client_address(None, ["192.0.2.1"], trusted) is None


async def test_only_managers_read_the_trail(make_client: MakeClient) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT), MANAGER)
    refused = error(403, "Only members of MANAGER_GROUPS may read audit trails.")
    for headers in ({"miauserid": "doctor-1"}, {"miauserid": "x", "miausergroups": "doctors"}, {}):
        response = await client.get(f"/teleconsultation/{room_id}/audit", headers=headers)
        assert (response.status, await response.json()) == (403, refused)
    # Without MANAGER_GROUPS nobody is a manager.
    plain = await make_client()
    response = await plain.get(f"/teleconsultation/{room_id}/audit", headers=MANAGER)
    assert (response.status, await response.json()) == (403, refused)


async def test_the_trail_is_read_a_page_at_a_time(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT), MANAGER)
    clock.advance(hours=4)
    for n in range(4):
        response = await client.get(
            f"/teleconsultation/{room_id}", headers=who("doctor-1", f"req-{n}")
        )
        assert response.status == 200
    seen: list[str] = []
    body = await trail(client, room_id, "?limit=2")
    seen += [item["requestId"] for item in body["items"]]
    while body["nextCursor"] is not None:
        body = await trail(client, room_id, f"?limit=2&cursor={body['nextCursor']}")
        seen += [item["requestId"] for item in body["items"]]
    assert seen[1:] == ["req-0", "req-1", "req-2", "req-3"]
    response = await client.get(f"/teleconsultation/{room_id}/audit?limit=0", headers=MANAGER)
    assert response.status == 400
    assert await response.json() == error(
        400, "limit: Must be greater than or equal to 1 and less than or equal to 100."
    )


async def test_no_entry_no_link(
    client: Client, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)

    async def down(entries: Any) -> None:
        raise Unavailable("The SQLite store failed: disk I/O error.")

    monkeypatch.setattr(client.app[SERVICES].store.audit, "append", down)
    response = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    assert response.status == 503
    assert await response.json() == error(
        503, "The SQLite store failed: disk I/O error.", code="store_unavailable"
    )


class SlowTrail:
    """An audit trail whose writes wait for the test to let them through."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.gate = asyncio.Event()
        self.failure: Exception | None = None

    async def append(self, entries: Any) -> None:
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.writes.append([entry.request_id for entry, _ in entries])


async def test_entries_that_arrive_during_a_write_share_the_next_one() -> None:
    trail = SlowTrail()
    log = AuditLog(trail, FrozenClock(), 365)  # type: ignore[arg-type]

    def recording(n: int) -> asyncio.Task[None]:
        trace = RequestTrace(f"req-{n}", "192.0.2.1", None)
        return asyncio.create_task(log.record("link_handed_out", "t-1", "doctor-1", trace))

    first = recording(0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first write is under way, waiting at the gate
    others = [recording(n) for n in range(1, 5)]
    await asyncio.sleep(0)
    assert not first.done()
    trail.gate.set()
    await asyncio.gather(first, *others)
    assert trail.writes == [["req-0"], ["req-1", "req-2", "req-3", "req-4"]]

    trail.failure = Unavailable("down")
    failing = [recording(n) for n in (5, 6)]
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert [type(result) for result in results] == [Unavailable, Unavailable]
    assert trail.writes == [["req-0"], ["req-1", "req-2", "req-3", "req-4"]]
