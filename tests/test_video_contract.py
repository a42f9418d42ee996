"""One contract, every video plugin: the same tests against `fake`, `bandyer` and `webrtc`.

Each test checks the provider's own state (the fake's memory, the fake Kaleyra
server's users and rooms, the webrtc provider's documents in the store), not only
what the provider object returned.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from teleconsult_bandyer import BandyerVideo
from teleconsult_bandyer.client import ClientOptions, KaleyraClient
from teleconsult_bandyer.fake_kaleyra import FakeKaleyra
from teleconsult_fake import FakeVideo
from teleconsult_webrtc import create as create_webrtc

from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.core.domain import TOOLS, Level, RoomParticipant, RoomSpec
from teleconsult.errors import ProviderError
from teleconsult.providers.protocols import (
    CreatedRoom,
    JoinRequest,
    ProviderContext,
    VideoProvider,
)
from teleconsult.providers.storage import ProviderStorage
from teleconsult.store import Store, open_store
from tests.helpers import API_KEY, STARTED, FrozenClock


@dataclass
class Subject:
    provider: VideoProvider
    users: Callable[[], Awaitable[set[str]]]
    rooms: Callable[[], Awaitable[set[str]]]


def known(names: Callable[[], Iterable[str]]) -> Callable[[], Awaitable[set[str]]]:
    async def read() -> set[str]:
        return set(names())

    return read


@pytest.fixture(params=["fake", "bandyer", "webrtc"])
async def subject(
    request: pytest.FixtureRequest,
    kaleyra: FakeKaleyra,
    kaleyra_url: str,
    store_url: str,
    store_factory: Callable[[Settings], Awaitable[Store]] | None,
    clock: FrozenClock,
) -> AsyncIterator[Subject]:
    if request.param == "fake":
        fake = FakeVideo("http://video.test")
        yield Subject(fake, known(lambda: fake.users), known(lambda: fake.rooms))
        await fake.close()
        return
    if request.param == "webrtc":
        settings = Settings.from_environ({"STORE_URL": store_url})
        store = await (store_factory or open_store)(settings)
        storage = ProviderStorage(store.provider_data, "webrtc", clock)

        async def no_roster(teleconsultation_id: str) -> None:
            return None

        webrtc = create_webrtc(
            ProviderContext(settings, load_config(None), {}, clock, storage, no_roster)
        )

        async def users() -> set[str]:
            return {found.key.removeprefix("user/") for found in await storage.find("user/")}

        yield Subject(webrtc, users, webrtc.rooms.ids)
        await webrtc.close()
        await store.health.close()
        return
    options = ClientOptions(base_url=kaleyra_url, api_key=API_KEY, timeout_seconds=2)
    bandyer = BandyerVideo(KaleyraClient(options, aiohttp.ClientSession()))
    yield Subject(bandyer, known(lambda: kaleyra.users), known(lambda: kaleyra.rooms))
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
    assert await subject.users() == {first}


async def test_concurrent_ensure_user_makes_one_user(subject: Subject) -> None:
    ids = await asyncio.gather(
        *(subject.provider.ensure_user("auth0|patient", Level.BASIC) for _ in range(5))
    )
    assert len(set(ids)) == 1
    assert await subject.users() == set(ids)


async def test_distinct_external_ids_make_distinct_users(subject: Subject) -> None:
    ids = await users(subject, ("a@example.com", Level.BASIC), ("a_example.com", Level.BASIC))
    assert len(set(ids)) == 2


async def test_create_room_gives_each_participant_a_link(subject: Subject) -> None:
    """Fixed at creation (fake, bandyer) or made when handed out (webrtc): one link each."""
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))

    room = await subject.provider.create_room(spec((doctor, True), (patient, False), duration=600))
    links = {
        seat.provider_user_id: subject.provider.join_link(handed_out(room, seat))
        for seat in spec((doctor, True), (patient, False), duration=600).participants
    }

    assert await subject.rooms() == {room.provider_room_id}
    assert set(room.links) <= {doctor, patient}
    assert links[doctor] != links[patient]
    assert all(link.startswith("http") for link in links.values())


def handed_out(room: CreatedRoom, seat: RoomParticipant) -> JoinRequest:
    """The request the core makes when a locked teleconsultation's participant polls."""
    return JoinRequest(
        teleconsultation_id="6b1136aa51ead514b4b06b96",
        provider_room_id=room.provider_room_id,
        participant=seat,
        display_name="Joe Smith",
        stored_link=room.links.get(seat.provider_user_id),
        language="it",
        background=False,
        opens_at=STARTED,
        starts_at=STARTED,
        ends_at=STARTED + timedelta(minutes=10),
        limited=True,
    )


async def test_delete_room_removes_it_and_tolerates_repeats(subject: Subject) -> None:
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))
    keep = await subject.provider.create_room(spec((doctor, True), (patient, False)))
    drop = await subject.provider.create_room(spec((doctor, True), (patient, False)))

    await subject.provider.delete_room(drop.provider_room_id)
    await subject.provider.delete_room(drop.provider_room_id)
    await subject.provider.delete_room("no-such-room")

    assert await subject.rooms() == {keep.provider_room_id}


async def test_a_room_without_an_admin_is_refused(subject: Subject) -> None:
    first, second = await users(subject, ("p1", Level.BASIC), ("p2", Level.BASIC))

    with pytest.raises(ProviderError) as raised:
        await subject.provider.create_room(spec((first, False), (second, False)))

    assert raised.value.status == 502
    assert raised.value.operation == "create a room"
    assert await subject.rooms() == set()


async def test_check_passes_when_the_provider_answers(subject: Subject) -> None:
    await subject.provider.check()
