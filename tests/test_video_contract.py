"""One contract, every video plugin: the same tests against `fake`, `bandyer`, `livekit`,
`jitsi`, `webrtc` and `janus` (a real Janus, `tests/janus_server.py`).

Each test checks the provider's own state where it has one (the fake's memory, the fake
Kaleyra server's users and rooms, the fake LiveKit server's rooms, the webrtc provider's
documents in the store), and for providers whose links are tokens, what each link's token
opens (LiveKit's verified with the SDK's `TokenVerifier`). LiveKit has no users, and Jitsi
keeps no state at all: its rooms and users exist only in the tokens, so what can be
checked there is the tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import aiohttp
import jwt
import pytest
from livekit import api
from teleconsult_bandyer import BandyerVideo
from teleconsult_bandyer.client import ClientOptions, KaleyraClient
from teleconsult_fake import FakeVideo
from teleconsult_janus import JanusSettings
from teleconsult_janus import create as create_janus
from teleconsult_janus.tokens import link_key
from teleconsult_jitsi import JitsiSettings
from teleconsult_jitsi import create as create_jitsi
from teleconsult_livekit import LiveKitSettings
from teleconsult_livekit import create as create_livekit
from teleconsult_webrtc import WebRTCSettings
from teleconsult_webrtc import create as create_webrtc
from yarl import URL

from teleconsult.callpage.links import LinkSigner
from teleconsult.configuration.declarations import DeclaredSettings
from teleconsult.configuration.settings import Settings
from teleconsult.core.domain import TOOLS, Level, RoomParticipant, RoomSpec
from teleconsult.errors import ProviderError
from teleconsult.providers.outbound import CallPolicy
from teleconsult.providers.protocols import (
    CreatedRoom,
    JoinRequest,
    ProviderContext,
    VideoProvider,
)
from teleconsult.providers.storage import ProviderStorage
from teleconsult.store import Store, open_store
from tests.fakes.kaleyra import FakeKaleyra
from tests.fakes.livekit import FakeLiveKit
from tests.helpers import (
    API_KEY,
    JITSI_SECRET,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    FrozenClock,
    jitsi_env,
    livekit_env,
)
from tests.janus_server import (
    JanusServer,
    signed_token,
    videoroom,
)

PROVIDERS = ["fake", "bandyer", "livekit", "jitsi", "webrtc", "janus"]


@dataclass
class Subject:
    provider: VideoProvider
    users: Callable[[], Awaitable[set[str]]] | None
    """The provider's users, or None when it keeps none (identities live in its tokens)."""
    rooms: Callable[[], Awaitable[set[str]]] | None
    """The provider's rooms, or None when a room exists only once someone joins it."""
    opens: Callable[[str], tuple[str, str]] | None = None
    """For links that are tokens: the (room, user) a link's token lets in."""


def known(names: Callable[[], Iterable[str]]) -> Callable[[], Awaitable[set[str]]]:
    """A provider's state kept in memory, read as the contract reads any state."""

    async def read() -> set[str]:
        return set(names())

    return read


def jitsi_opens(link: str) -> tuple[str, str]:
    claims = jwt.decode(
        URL(link).query["jwt"], JITSI_SECRET, algorithms=["HS256"], audience="jitsi"
    )
    return claims["room"], claims["context"]["user"]["id"]


def livekit_opens(link: str) -> tuple[str, str]:
    claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(URL(link).query["token"])
    assert claims.video is not None
    return claims.video.room, claims.identity


Own = TypeVar("Own", bound=DeclaredSettings)


def context(settings: Own) -> ProviderContext[Own]:
    return ProviderContext(settings, Settings.from_environ({}).http.own_url)


@pytest.fixture(params=PROVIDERS)
async def subject(
    request: pytest.FixtureRequest,
    kaleyra: FakeKaleyra,
    kaleyra_url: str,
    livekit: FakeLiveKit,
    livekit_url: str,
    store_url: str,
    store_factory: Callable[[Settings], Awaitable[Store]] | None,
    clock: FrozenClock,
) -> AsyncIterator[Subject]:
    if request.param == "fake":
        fake = FakeVideo("http://video.test")
        yield Subject(fake, known(lambda: fake.users), known(lambda: fake.rooms))
        await fake.close()
    elif request.param == "bandyer":
        options = ClientOptions(
            base_url=kaleyra_url, api_key=API_KEY, policy=CallPolicy(timeout_seconds=2)
        )
        bandyer = BandyerVideo(KaleyraClient(options, aiohttp.ClientSession()))
        yield Subject(bandyer, known(lambda: kaleyra.users), known(lambda: kaleyra.rooms))
        await bandyer.close()
    elif request.param == "livekit":
        provider = create_livekit(context(LiveKitSettings.from_environ(livekit_env(livekit_url))))
        yield Subject(provider, None, known(lambda: livekit.rooms), livekit_opens)
        await provider.close()
    elif request.param == "jitsi":
        jitsi = create_jitsi(context(JitsiSettings.from_environ(jitsi_env())))
        yield Subject(jitsi, None, None, jitsi_opens)
        await jitsi.close()
    elif request.param == "janus":
        janus: JanusServer = request.getfixturevalue("janus")
        async with janus_subject(janus, store_url, store_factory, clock) as found:
            yield found
    else:
        settings = Settings.from_environ({"STORE_URL": store_url})
        store = await (store_factory or open_store)(settings)
        storage = ProviderStorage(store.provider_data, "webrtc", clock)

        webrtc = create_webrtc(
            ProviderContext(
                WebRTCSettings.from_environ({}),
                settings.http.own_url,
                clock=clock,
                storage=storage,
                roster=no_roster,
            )
        )

        yield Subject(webrtc, None, webrtc.rooms.ids)  # users are derived, never stored
        await webrtc.close()
        await store.health.close()


async def no_roster(teleconsultation_id: str) -> None:
    return None


@contextlib.asynccontextmanager
async def janus_subject(
    janus: JanusServer,
    store_url: str,
    store_factory: Callable[[Settings], Awaitable[Store]] | None,
    clock: FrozenClock,
) -> AsyncIterator[Subject]:
    """The janus provider on a real Janus: its rooms as Janus lists them to the admin key."""
    settings = Settings.from_environ({"STORE_URL": store_url})
    store = await (store_factory or open_store)(settings)
    environ = janus.environ(JANUS_ALLOW_PLAIN_HTTP="true")
    provider = create_janus(
        ProviderContext(
            JanusSettings.from_environ(environ),
            settings.http.own_url,
            clock=clock,
            storage=ProviderStorage(store.provider_data, "janus", clock),
            roster=no_roster,
        )
    )

    async def rooms() -> set[str]:
        token = signed_token(janus.token_secret, int(datetime.now(UTC).timestamp()) + 60)
        listed = await videoroom(
            janus.http_url, token, {"request": "list", "admin_key": janus.admin_key}
        )
        return {str(room["room"]) for room in listed["list"]}

    signer = LinkSigner(link_key(janus.token_secret))

    def opens(link: str) -> tuple[str, str]:
        credential = signer.verify(link.rsplit("/", 1)[1])
        assert credential is not None
        return credential.room_id, credential.user_id

    yield Subject(provider, None, rooms, opens)  # Janus has no users
    await provider.close()
    await store.health.close()


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
    if subject.users is not None:
        assert await subject.users() == {first}


async def test_concurrent_ensure_user_makes_one_user(subject: Subject) -> None:
    ids = await asyncio.gather(
        *(subject.provider.ensure_user("auth0|patient", Level.BASIC) for _ in range(5))
    )
    assert len(set(ids)) == 1
    if subject.users is not None:
        assert await subject.users() == set(ids)


async def test_distinct_external_ids_make_distinct_users(subject: Subject) -> None:
    ids = await users(subject, ("a@example.com", Level.BASIC), ("a_example.com", Level.BASIC))
    assert len(set(ids)) == 2


def join_request(room: CreatedRoom, seat: RoomParticipant) -> JoinRequest:
    """The link asked for now, inside the consultation's window (as GET asks for it)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return JoinRequest(
        teleconsultation_id="0123456789abcdef01234567",
        provider_room_id=room.provider_room_id,
        participant=seat,
        display_name=f"Name of {seat.provider_user_id}",
        stored_link=room.links.get(seat.provider_user_id),
        language="it",
        background=False,
        opens_at=now - timedelta(minutes=5),
        starts_at=now,
        ends_at=now + timedelta(minutes=30),
        limited=True,
    )


async def test_each_participant_gets_their_own_link(subject: Subject) -> None:
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))
    room_spec = spec((doctor, True), (patient, False), duration=600)

    room = await subject.provider.create_room(room_spec)

    if subject.rooms is not None:
        assert await subject.rooms() == {room.provider_room_id}
    links = {
        seat.provider_user_id: subject.provider.join_link(join_request(room, seat))
        for seat in room_spec.participants
    }
    assert links[doctor] != links[patient]
    assert all(link.startswith(("https://", "http://")) for link in links.values())
    if subject.opens is not None:
        assert {user: subject.opens(link) for user, link in links.items()} == {
            doctor: (room.provider_room_id, doctor),
            patient: (room.provider_room_id, patient),
        }


async def test_each_room_is_a_new_one(subject: Subject) -> None:
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))
    same = spec((doctor, True), (patient, False))

    first = await subject.provider.create_room(same)
    second = await subject.provider.create_room(same)

    assert first.provider_room_id != second.provider_room_id
    if subject.rooms is not None:
        assert await subject.rooms() == {first.provider_room_id, second.provider_room_id}


async def test_delete_room_removes_it_and_tolerates_repeats(subject: Subject) -> None:
    doctor, patient = await users(subject, ("doctor-1", Level.PLUS), ("patient-1", Level.BASIC))
    keep = await subject.provider.create_room(spec((doctor, True), (patient, False)))
    drop = await subject.provider.create_room(spec((doctor, True), (patient, False)))

    await subject.provider.delete_room(drop.provider_room_id)
    await subject.provider.delete_room(drop.provider_room_id)
    await subject.provider.delete_room("no-such-room")

    if subject.rooms is not None:
        assert await subject.rooms() == {keep.provider_room_id}


async def test_a_room_without_an_admin_is_refused(subject: Subject) -> None:
    first, second = await users(subject, ("p1", Level.BASIC), ("p2", Level.BASIC))

    with pytest.raises(ProviderError) as raised:
        await subject.provider.create_room(spec((first, False), (second, False)))

    assert raised.value.status == 502
    assert raised.value.operation == "create a room"
    if subject.rooms is not None:
        assert await subject.rooms() == set()


async def test_check_passes_when_the_provider_answers(subject: Subject) -> None:
    await subject.provider.check()
