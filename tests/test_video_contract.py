"""One contract, every video plugin: the same tests against `fake` and `bandyer`.

Each test checks the provider's own state (the fake's memory, the fake Kaleyra
server's users and rooms), not only what the provider object returned.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from teleconsult_bandyer import BandyerVideo
from teleconsult_bandyer.client import ClientOptions, KaleyraClient
from teleconsult_bandyer.fake_kaleyra import FakeKaleyra
from teleconsult_fake import FakeVideo

from teleconsult.core.domain import TOOLS, Level, RoomParticipant, RoomSpec
from teleconsult.errors import ProviderError
from teleconsult.providers.protocols import VideoProvider
from tests.helpers import API_KEY


@dataclass
class Subject:
    provider: VideoProvider
    users: Callable[[], set[str]]
    rooms: Callable[[], set[str]]


@pytest.fixture(params=["fake", "bandyer"])
async def subject(
    request: pytest.FixtureRequest, kaleyra: FakeKaleyra, kaleyra_url: str
) -> AsyncIterator[Subject]:
    if request.param == "fake":
        fake = FakeVideo("http://video.test")
        yield Subject(fake, lambda: set(fake.users), lambda: set(fake.rooms))
        await fake.close()
        return
    options = ClientOptions(base_url=kaleyra_url, api_key=API_KEY, timeout_seconds=2)
    bandyer = BandyerVideo(KaleyraClient(options, aiohttp.ClientSession()))
    yield Subject(bandyer, lambda: set(kaleyra.users), lambda: set(kaleyra.rooms))
    await bandyer.close()


def spec(*users: tuple[str, bool], duration: int | None = None) -> RoomSpec:
    return RoomSpec(
        participants=tuple(RoomParticipant(user, admin, TOOLS) for user, admin in users),
        duration_seconds=duration,
        live=True,
        recording="none",
    )


async def users(subject: Subject, *names: tuple[str, Level]) -> list[str]:
    return [await subject.provider.ensure_user(name, level) for name, level in names]


async def test_limits_are_sane(subject: Subject) -> None:
    limits = subject.provider.limits
    assert 2 <= limits.min_participants <= limits.max_participants
    assert 0 < limits.min_duration_seconds <= limits.max_duration_seconds


async def test_ensure_user_is_idempotent(subject: Subject) -> None:
    first = await subject.provider.ensure_user("doctor-1", Level.PLUS)
    again = await subject.provider.ensure_user("doctor-1", Level.PLUS)

    assert first == again
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", first)
    assert subject.users() == {first}


async def test_concurrent_ensure_user_makes_one_user(subject: Subject) -> None:
    ids = await asyncio.gather(
        *(subject.provider.ensure_user("auth0|patient", Level.BASIC) for _ in range(5))
    )
    assert len(set(ids)) == 1
    assert subject.users() == set(ids)


async def test_distinct_external_ids_make_distinct_users(subject: Subject) -> None:
    ids = await users(subject, ("a@example.com", Level.BASIC), ("a_example.com", Level.BASIC))
    assert len(set(ids)) == 2


async def test_create_room_gives_each_participant_a_link(subject: Subject) -> None:
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))

    room = await subject.provider.create_room(spec((doctor, True), (patient, False), duration=600))

    assert subject.rooms() == {room.provider_room_id}
    assert set(room.links) == {doctor, patient}
    assert room.links[doctor] != room.links[patient]
    assert all(link.startswith("http") for link in room.links.values())


async def test_delete_room_removes_it_and_tolerates_repeats(subject: Subject) -> None:
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))
    keep = await subject.provider.create_room(spec((doctor, True), (patient, False)))
    drop = await subject.provider.create_room(spec((doctor, True), (patient, False)))

    await subject.provider.delete_room(drop.provider_room_id)
    await subject.provider.delete_room(drop.provider_room_id)
    await subject.provider.delete_room("no-such-room")

    assert subject.rooms() == {keep.provider_room_id}


async def test_a_room_without_an_admin_is_refused(subject: Subject) -> None:
    first, second = await users(subject, ("p1", Level.BASIC), ("p2", Level.BASIC))

    with pytest.raises(ProviderError) as raised:
        await subject.provider.create_room(spec((first, False), (second, False)))

    assert raised.value.status == 502
    assert raised.value.operation == "create a room"
    assert subject.rooms() == set()


async def test_check_passes_when_the_provider_answers(subject: Subject) -> None:
    await subject.provider.check()
