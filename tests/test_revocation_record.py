"""Revocations as they are recorded and as each provider answers them (issue 30): the audit
trail and the webhooks carry who, whom and when, never a link; concurrent revocations lose
nothing; `livekit` removes the participant and hands out a new identity; `fake` refuses the
old link; `jitsi` and `bandyer` answer 501 saying why (a provider that says nothing, the
plain 501), and change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import jwt
from livekit.protocol import room as room_pb
from yarl import URL

from teleconsult.services import SERVICES
from tests.fakes.livekit import FakeLiveKit, Fault
from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    STARTED,
    WEBRTC,
    Client,
    FrozenClock,
    MakeClient,
    Server,
    bandyer_env,
    create,
    error,
    jitsi_env,
    join,
    livekit_env,
    teleconsultation,
    webrtc_call,
)
from tests.test_livekit import CONFIG as LIVEKIT_CONFIG
from tests.test_livekit import around, real_now, token_of
from tests.test_plugins import load_documented_example
from tests.test_revocation import block_path, link_path
from tests.test_webhooks import SECRET, Receiver, deliver_all, start_receiver

MANAGER = {"miauserid": "secretary-1", "miausergroups": "secretaries"}
DOCTOR_ASKS = {"miauserid": "doctor-1", "x-request-id": "revoke-1"}
AT = "2030-02-22T15:41:00.000Z"


async def test_each_change_is_an_audit_entry_and_a_webhook_without_the_link(
    make_client: MakeClient, aiohttp_server: Server, clock: FrozenClock
) -> None:
    receiver = await start_receiver(aiohttp_server, Receiver())
    client = await make_client(
        WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET, MANAGER_GROUPS="secretaries", **WEBRTC
    )
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT), headers=MANAGER)
    clock.now = STARTED + timedelta(minutes=11)  # past the no-show deadline: it went out
    _, handed = await join(client, room_id, "patient-1")
    await deliver_all(client)
    assert receiver.types[-1] == "call.no_show"
    before = len(receiver.received)

    for method, path, request_id in (
        (client.delete, link_path(room_id, "patient-1"), "revoke-1"),
        (client.put, block_path(room_id, "patient-1"), "remove-1"),
        (client.delete, block_path(room_id, "patient-1"), "unblock-1"),
    ):
        response = await method(path, headers={**MANAGER, "x-request-id": request_id})
        assert response.status == 204
    await deliver_all(client)

    events = receiver.received[before:]
    assert [r.payload["type"] for r in events] == [
        "participant.link_revoked",
        "participant.removed",
        "participant.unblocked",
    ]
    patient = {"userExternalId": "patient-1", "providerUserId": "patient-1", "level": "basic"}
    for received in events:
        data = received.payload["data"]
        assert (data["participant"], data["by"], data["teleconsultationId"]) == (
            patient,
            "secretary-1",
            room_id,
        )
        text = received.body.decode()
        for secret in (handed["accessLinkURL"], "/webrtc/call/", "Jane Doe", "Joe Smith"):
            assert secret not in text
    response = await client.get(f"/teleconsultation/{room_id}/audit", headers=MANAGER)
    entries = (await response.json())["items"]
    assert [
        (e["action"], e["actor"], e["participant"], e["requestId"], e["at"]) for e in entries[-3:]
    ] == [
        ("link_revoked", "secretary-1", "patient-1", "revoke-1", AT),
        ("participant_removed", "secretary-1", "patient-1", "remove-1", AT),
        ("participant_unblocked", "secretary-1", "patient-1", "unblock-1", AT),
    ]
    assert handed["accessLinkURL"] not in await response.text()


async def test_concurrent_revocations_on_two_replicas_lose_nothing(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    first = await make_client(**WEBRTC)
    second = await make_client(**WEBRTC)
    room_id, _ = await webrtc_call(first, clock, DOCTOR, PATIENT, NURSE)
    asks = [
        (first.delete, link_path(room_id, "patient-1")),
        (second.delete, link_path(room_id, "nurse-1")),
        (second.put, block_path(room_id, "patient-1")),
        (first.delete, link_path(room_id, "patient-1")),
    ]

    answers = await asyncio.gather(*(method(path, headers=DOCTOR_ASKS) for method, path in asks))

    assert [answer.status for answer in answers] == [204, 204, 204, 204]
    record = await first.app[SERVICES].store.records.get(room_id)
    assert record is not None
    state = {p.external_id: (p.link_generation, p.blocked) for p in record.participants}
    assert state == {"doctor-1": (0, False), "patient-1": (3, True), "nurse-1": (1, False)}
    assert record.version == 1 + len(asks)  # one write each, none lost, none doubled


async def livekit_call(
    make_client: MakeClient, livekit_url: str, clock: FrozenClock
) -> tuple[Client, str, str]:
    """A LiveKit teleconsultation inside its immutable window (at the real time, which the
    fake's token checks use): the client, its id and the patient's token."""
    client = await make_client(
        LIVEKIT_CONFIG, **livekit_env(livekit_url, IMMUTABLE_PERIOD_MS=str(600_000))
    )
    now = real_now()
    clock.now = now - timedelta(hours=1)
    room_id = await create(client, around(now, 2, DOCTOR, PATIENT))
    clock.now = now
    _, handed = await join(client, room_id, "patient-1")
    return client, room_id, token_of(handed["accessLinkURL"], livekit_url)


async def test_livekit_removes_the_participant_and_hands_out_a_new_identity(
    make_client: MakeClient, livekit: FakeLiveKit, livekit_url: str, clock: FrozenClock
) -> None:
    client, room_id, old = await livekit_call(make_client, livekit_url, clock)
    room = jwt.decode(old, options={"verify_signature": False})["video"]["room"]
    livekit.join(old)  # the patient is in the call
    assert list(livekit.participants[room]) == ["patient-1"]

    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    assert livekit.participants[room] == {}
    [removal] = livekit.calls_to("RemoveParticipant")
    assert removal.request == room_pb.RoomParticipantIdentity(room=room, identity="patient-1")
    _, again = await join(client, room_id, "patient-1")
    new = token_of(again["accessLinkURL"], livekit_url)
    assert jwt.decode(new, options={"verify_signature": False})["sub"] == "patient-1~1"
    livekit.join(new)
    livekit.join(old)  # LiveKit keeps no revocation list: the old token joins until its exp,
    assert sorted(livekit.participants[room]) == ["patient-1", "patient-1~1"]  # as its own
    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 204  # and the next revocation removes both earlier identities
    assert livekit.participants[room] == {}
    details = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    assert (await details.json())["details"]["connected"] == []


async def unsupported(client: Client, room_id: str, provider: str, why: str) -> None:
    """Revoking and removing answer 501 with why; nothing changed (the same link, no block)."""
    status, before = await join(client, room_id, "patient-1")
    assert status == 200
    assert before["accessLinkURL"] is not None
    refused = error(501, f"The {provider} video provider does not offer link revocation{why}")
    for response in (
        await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS),
        await client.put(block_path(room_id, "patient-1"), headers=DOCTOR_ASKS),
    ):
        assert (response.status, await response.json()) == (501, refused)
    status, after = await join(client, room_id, "patient-1")
    assert status == 200
    if provider == "bandyer":  # jitsi and echo sign a new link each time; Kaleyra's are fixed
        assert after["accessLinkURL"] == before["accessLinkURL"]
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert record.version == 1


async def test_jitsi_cannot_revoke_and_says_why(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(**jitsi_env())
    room_id, _ = await locked_call(client, clock)
    await unsupported(
        client,
        room_id,
        "jitsi",
        ": a Jitsi link is a JWT that Prosody accepts until its `exp`, with no list of revoked "
        "tokens and no API to disconnect one participant; cancel the teleconsultation to end "
        "every link",
    )


async def test_bandyer_cannot_revoke_and_says_why(
    make_client: MakeClient, kaleyra_url: str, clock: FrozenClock
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url))
    room_id, _ = await locked_call(client, clock)
    await unsupported(
        client,
        room_id,
        "bandyer",
        ": Kaleyra's documented API fixes each participant's link when the room is created and "
        "has no call that ends one user's access (only deleting the room ends every link); "
        "cancel the teleconsultation to end them",
    )


async def test_a_provider_that_says_nothing_gets_the_plain_501(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(plugins=[load_documented_example()], VIDEO_PROVIDER="echo")
    room_id, _ = await locked_call(client, clock)
    await unsupported(client, room_id, "echo", ".")


async def test_the_fake_provider_refuses_a_revoked_link(client: Client, clock: FrozenClock) -> None:
    room_id, _ = await locked_call(client, clock)
    _, before = await join(client, room_id, "patient-1")

    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert response.status == 204
    _, after = await join(client, room_id, "patient-1")
    assert after["accessLinkURL"] != before["accessLinkURL"]
    for link, status in ((before["accessLinkURL"], 410), (after["accessLinkURL"], 200)):
        assert (await client.get(URL(link).raw_path_qs)).status == status


async def locked_call(client: Client, clock: FrozenClock) -> tuple[str, dict[str, Any]]:
    """A teleconsultation that is due: links are handed out."""
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.now = STARTED
    return room_id, {}


async def test_a_change_of_the_participants_keeps_a_revocation_and_a_block(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """Before the lock a PATCH may list the participants again: the ones kept keep their link
    generation and their block, so a change never gives a revoked link back."""
    client = await make_client(**WEBRTC)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    for method, path in (
        (client.delete, link_path(room_id, "doctor-1")),
        (client.put, block_path(room_id, "patient-1")),
    ):
        assert (await method(path, headers=DOCTOR_ASKS)).status == 204

    patched = await client.patch(
        f"/teleconsultation/{room_id}",
        json={"participants": {"number": 2, "data": [DOCTOR, PATIENT]}},
        headers=DOCTOR_ASKS,
    )

    assert patched.status == 204
    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    state = {p.external_id: (p.link_generation, p.blocked) for p in record.participants}
    assert state == {"doctor-1": (1, False), "patient-1": (1, True)}
    clock.now = STARTED
    assert (await join(client, room_id, "patient-1"))[0] == 403


async def test_a_livekit_failure_names_the_operation_and_the_revocation_stays_written(
    make_client: MakeClient, livekit: FakeLiveKit, livekit_url: str, clock: FrozenClock
) -> None:
    client, room_id, old = await livekit_call(make_client, livekit_url, clock)
    livekit.join(old)
    livekit.fail("RemoveParticipant", Fault(status=500, times=3))

    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)

    assert (response.status, await response.json()) == (
        502,
        error(
            502,
            "The livekit provider failed to remove a participant: HTTP 500 (internal): "
            "injected fault",
        ),
    )
    _, again = await join(client, room_id, "patient-1")  # written: the next link is new
    new = token_of(again["accessLinkURL"], livekit_url)
    assert jwt.decode(new, options={"verify_signature": False})["sub"] == "patient-1~1"
    response = await client.delete(link_path(room_id, "patient-1"), headers=DOCTOR_ASKS)
    assert response.status == 204  # the retry removes them
    assert (
        livekit.participants[jwt.decode(new, options={"verify_signature": False})["video"]["room"]]
        == {}
    )
