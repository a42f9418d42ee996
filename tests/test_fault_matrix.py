"""Every provider call of every use case failing once: error, timeout, an answer that comes
after the timeout, none at all; on each provider that has an API, behind its in-process fake
(Kaleyra, LiveKit), or a real Janus behind a proxy that spoils its requests
(`tests/fakes/janus_proxy.py`).

After the fault clears, the request's late work is done (a late answer read until its
deadline, well inside the jobs' grace) and the reconciler has run, the guarantees hold,
checked against the fake server's own rooms:
- a live record never points to a room that does not exist;
- a trashed record points to no room;
- every room on the provider belongs to a live record, but for the one case a
  provider without custom room ids makes impossible (docs/operations.md): a Kaleyra
  room whose creation answer never came, so its id was never learned (one that comes
  late names the room, which is then deleted). LiveKit rooms are named by us before the
  call, and a creation whose answer was lost is asked again under that name, which
  answers the room it made: LiveKit has no such case. Neither has Janus: a repeated
  creation is refused as "already exists" and `exists` confirms it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from teleconsult.core.domain import RecordState
from teleconsult.core.outbox import COMMIT_DEADLINE, JOB_GRACE
from teleconsult.providers.protocols import Caller, ParticipantEntry
from teleconsult.services import SERVICES
from tests.fakes import kaleyra as fake_kaleyra
from tests.fakes import livekit as fake_livekit
from tests.fakes.janus_proxy import FaultyJanus
from tests.helpers import (
    API_KEY,
    DOCTOR,
    NURSE,
    PATIENT,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    bandyer_env,
    base_url,
    error,
    livekit_env,
    teleconsultation,
)
from tests.janus_server import (
    JanusServer,
)

FAULTS: dict[str, dict[str, Any]] = {
    "error": {"status": 500},
    "timeout": {"delay": 0.6},
    "lost answer": {"lost": True, "delay": 0.6},
    "dropped answer": {"dropped": True},
    "error on every attempt": {"status": 500, "times": 3},
}
"""Each fault in the words both fakes' `Fault` understand (calls time out after 0.3 s, and
are made at most 3 times): a lost answer comes after the timeout, a dropped one never."""


@dataclass
class Vendor:
    """A video provider behind its in-process fake: how to reach it, how to make one of its
    operations fail, and what rooms it has."""

    fake: fake_kaleyra.FakeKaleyra | fake_livekit.FakeLiveKit | FaultyJanus
    fault: Callable[..., Any]
    """The fake's `Fault`: each of `FAULTS` is in words both understand."""
    environ: dict[str, str]
    operations: dict[str, str]
    """The matrix's name of each operation the provider calls -> the fake's name for it."""
    unlearnable: frozenset[tuple[str, str]]
    """(operation, fault) that leave a room whose id no call can learn."""

    def fail(self, operation: str, fault: str) -> None:
        inject: Callable[[str, Any], None] = self.fake.fail
        inject(self.operations[operation], self.fault(**FAULTS[fault]))

    def rooms(self) -> set[str]:
        return set(self.fake.rooms)


OPERATIONS = {
    "bandyer": {"create_user": "create_user", "create_room": "create_room",
                "delete_room": "delete_room"},
    "livekit": {"create_room": "CreateRoom", "delete_room": "DeleteRoom"},  # no users in LiveKit
    "janus": {"create_room": "create", "delete_room": "destroy"},  # videoroom requests
}  # fmt: skip


@pytest.fixture
async def vendor(request: pytest.FixtureRequest, aiohttp_server: Server) -> Vendor:
    if request.param == "bandyer":
        kaleyra = fake_kaleyra.FakeKaleyra(api_key=API_KEY)
        environ = bandyer_env(await base_url(aiohttp_server, kaleyra.app()))
        environ["BANDYER_TIMEOUT_MS"] = "300"
        lost = frozenset({("create_room", "dropped answer")})
        return Vendor(kaleyra, fake_kaleyra.Fault, environ, OPERATIONS["bandyer"], lost)
    if request.param == "janus":
        janus: JanusServer = request.getfixturevalue("janus")
        proxy = FaultyJanus(janus)
        url = await base_url(aiohttp_server, proxy.app())
        environ = janus.environ(
            JANUS_URL=url + "/janus", JANUS_ALLOW_PLAIN_HTTP="true", JANUS_TIMEOUT_MS="300"
        )
        return Vendor(proxy, fake_livekit.Fault, environ, OPERATIONS["janus"], frozenset())
    livekit = fake_livekit.FakeLiveKit()
    environ = livekit_env(await base_url(aiohttp_server, livekit.app()))
    environ["LIVEKIT_TIMEOUT_MS"] = "300"
    return Vendor(livekit, fake_livekit.Fault, environ, OPERATIONS["livekit"], frozenset())


UseCase = Callable[[Client, list[str]], Awaitable[Any]]


async def create_all_known(client: Client, ids: list[str]) -> None:
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    if response.status == 201:
        ids.append((await response.json())["roomId"])


async def add_the_last(client: Client, ids: list[str]) -> None:
    await client.post(f"/teleconsultation/{ids[0]}/participants/data", json=PATIENT)


async def replace_the_room(client: Client, ids: list[str]) -> None:
    await client.patch(
        f"/teleconsultation/{ids[0]}",
        json={"participants": {"number": 2, "data": [DOCTOR, NURSE]}},
    )


async def cancel(client: Client, ids: list[str]) -> None:
    await client.delete(f"/teleconsultation/{ids[0]}")


async def nothing_yet(client: Client, ids: list[str]) -> None:
    return None


async def one_incomplete(client: Client, ids: list[str]) -> None:
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR))
    ids.append((await response.json())["roomId"])


async def one_with_a_room(client: Client, ids: list[str]) -> None:
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    ids.append((await response.json())["roomId"])


CASES = [
    ("create", nothing_yet, create_all_known, ["create_user", "create_room"]),
    ("complete", one_incomplete, add_the_last, ["create_user", "create_room"]),
    ("replace", one_with_a_room, replace_the_room, ["create_user", "create_room", "delete_room"]),
    ("cancel", one_with_a_room, cancel, ["delete_room"]),
]
MATRIX = [
    pytest.param(vendor, setup, action, operation, fault, id=f"{vendor}-{name}-{operation}-{fault}")
    for vendor, calls in OPERATIONS.items()
    for name, setup, action, operations in CASES
    for operation in operations
    if operation in calls
    for fault in FAULTS
]


@pytest.mark.parametrize(
    ("vendor", "setup", "action", "operation", "fault"), MATRIX, indirect=["vendor"]
)
async def test_the_guarantees_hold_after_any_single_fault(
    make_client: MakeClient,
    vendor: Vendor,
    clock: FrozenClock,
    setup: UseCase,
    action: UseCase,
    operation: str,
    fault: str,
) -> None:
    client = await make_client(**vendor.environ)
    ids: list[str] = []
    await setup(client, ids)

    vendor.fail(operation, fault)
    await action(client, ids)
    vendor.fake.faults.clear()  # the fault clears
    await client.app[SERVICES].service.jobs.followed()  # late answers, before the grace ends

    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    reconciler = client.app[SERVICES].reconciler
    for _ in range(5):  # until no work is due (backoffs are 10 s and up)
        await reconciler.run_once()
        clock.advance(minutes=11)

    store = client.app[SERVICES].store
    referenced = set()
    for teleconsultation_id in ids:
        record = await store.records.get_any(teleconsultation_id)
        assert record is not None
        if record.state is RecordState.TRASH:
            assert record.room is None
        elif record.room is not None:
            assert record.room.provider_room_id in vendor.rooms()  # never a deleted room
            referenced.add(record.room.provider_room_id)
        if record.state is RecordState.PUBLIC and record.complete:
            assert record.room is not None  # a complete, active one has its room
    orphans = vendor.rooms() - referenced
    expected_orphans = 1 if (operation, fault) in vendor.unlearnable else 0
    assert len(orphans) == expected_orphans
    assert await store.outbox.job_backlog() == (0, None)


@pytest.mark.parametrize("vendor", ["bandyer"], indirect=True)
async def test_a_room_made_after_its_request_gave_up_is_deleted_once_its_answer_comes(
    make_client: MakeClient, vendor: Vendor, clock: FrozenClock
) -> None:
    """The flake of `bandyer-replace-delete_room-error on every attempt` under load: the
    replacement's room was made, but its answer came after the 0.3 s timeout (the machine
    stalled), so its id was never learned and the room was left. A late answer is read on
    until the request's deadline and names the room, which is deleted; here the deletion
    fails too, and the reconciler finishes it by the id the job learned."""
    client = await make_client(**vendor.environ)
    ids: list[str] = []
    await one_with_a_room(client, ids)
    [kept] = vendor.rooms()
    assert isinstance(vendor.fake, fake_kaleyra.FakeKaleyra)
    vendor.fake.fail("create_room", fake_kaleyra.Fault(lost=True, delay=0.5))
    vendor.fail("delete_room", "error on every attempt")

    response = await client.patch(
        f"/teleconsultation/{ids[0]}",
        json={"participants": {"number": 2, "data": [DOCTOR, NURSE]}},
    )
    assert response.status == 504
    assert await response.json() == error(
        504, "The bandyer provider failed to create a room: no answer within 0.3 s"
    )
    assert len(vendor.rooms()) == 2  # the replacement's room was made all the same
    await client.app[SERVICES].service.jobs.followed()  # its answer came, naming it
    assert len(vendor.rooms()) == 2  # its deletion failed: the job, now naming it, stays

    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    assert await client.app[SERVICES].reconciler.run_once() == 1
    assert vendor.rooms() == {kept}
    assert await client.app[SERVICES].store.outbox.job_backlog() == (0, None)
    metrics = await (await client.get("/-/metrics")).text()
    assert 'outcome="unknown_room"' not in metrics
    assert 'teleconsult_reconciliation_jobs_total{outcome="deleted"} 1.0' in metrics


@pytest.mark.parametrize("vendor", list(OPERATIONS), indirect=True)
async def test_a_crash_between_the_room_and_the_write_is_repaired_after_a_restart(
    make_client: MakeClient,
    vendor: Vendor,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Crash(BaseException):
        """The process dies here: no cleanup code runs."""

    env = vendor.environ
    first = await make_client(**env)
    response = await first.post("/teleconsultation", json=teleconsultation(2, DOCTOR))
    room_id = (await response.json())["roomId"]
    service = first.app[SERVICES].service

    async def die(*args: object, **kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(first.app[SERVICES].store.records, "replace", die)

    patient = ParticipantEntry("patient-1", ("patient",), "Jane Doe", "it", path="body")
    with pytest.raises(Crash):
        await service.add_participant(room_id, patient, Caller(None))
    [orphan] = vendor.rooms()  # made on the provider, never written down
    await first.close()

    restarted = await make_client(**env)  # same database, same provider
    clock.advance(seconds=JOB_GRACE.total_seconds() + 1)
    assert await restarted.app[SERVICES].reconciler.run_once() == 1
    assert vendor.rooms() == set()
    record = await restarted.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert len(record.participants) == 1  # the interrupted change did not happen

    response = await restarted.post(f"/teleconsultation/{room_id}/participants/data", json=PATIENT)
    assert response.status == 201  # the client's retry completes it
    [live] = vendor.rooms()
    assert live != orphan
    record = await restarted.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.room is not None
    assert record.room.provider_room_id == live


def test_a_change_ends_well_inside_the_grace() -> None:
    assert COMMIT_DEADLINE * 2 <= JOB_GRACE
