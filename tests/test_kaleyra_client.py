"""The Kaleyra client on its own: every operation, the retry rules, and a key that never leaks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from teleconsult_bandyer import BandyerVideo
from teleconsult_bandyer.client import ClientOptions, KaleyraClient

from teleconsult.core.domain import TOOLS, RoomParticipant, RoomSpec
from teleconsult.errors import ProviderError
from teleconsult.providers import outbound
from teleconsult.providers.outbound import CallPolicy
from tests.fakes.kaleyra import FakeKaleyra, Fault
from tests.helpers import API_KEY

SPEC = RoomSpec(
    participants=(
        RoomParticipant("doc", is_admin=True, tools=TOOLS),
        RoomParticipant("pat", is_admin=False, tools=("chat",)),
    ),
    duration_seconds=900,
    live=True,
    recording="manual",
)


@pytest.fixture
async def client(kaleyra_url: str) -> AsyncIterator[KaleyraClient]:
    policy = CallPolicy(timeout_seconds=0.5, backoff_seconds=0.01)
    options = ClientOptions(base_url=kaleyra_url, api_key=API_KEY, policy=policy)
    client = KaleyraClient(options, aiohttp.ClientSession())
    yield client
    await client.close()


@pytest.fixture
async def room(client: KaleyraClient) -> str:
    await client.create_user("doc", "plus")
    await client.create_user("pat", "basic")
    return (await client.create_room(SPEC)).room_id


async def test_room_details_come_back_in_camel_case(
    client: KaleyraClient, room: str, kaleyra: FakeKaleyra
) -> None:
    details = await client.get_room(room)
    assert details == {
        "recording": "manual",
        "recordingStatus": "stopped",
        "callType": "audio_video",
        "description": None,
        "status": "pending",
        "disabled": False,
        "creationDate": kaleyra.rooms[room]["details"]["creation_date"],
        "durationInSeconds": 900,
        "durationUsedInSeconds": 0,
        "live": True,
    }
    assert kaleyra.calls("get_room")[0].path == f"/v2/rooms/{room}"


async def test_sdk_credentials(client: KaleyraClient, kaleyra: FakeKaleyra) -> None:
    await client.create_user("doc", "plus")
    credentials = await client.create_sdk_credentials("doc", 3600)
    assert credentials.provider_user_id == "doc"
    assert credentials.access_token.startswith("token_")
    assert kaleyra.calls("sdk_credentials")[0].body == {"user_id": "doc", "expires_in": 3600}


async def test_uploads_are_listed_and_deleted(
    client: KaleyraClient, room: str, kaleyra: FakeKaleyra
) -> None:
    kaleyra.uploads[room] = ["file-1", "file-2"]

    assert await client.list_uploads(room) == ["file-1", "file-2"]
    await client.delete_upload("file-1")
    await client.delete_upload("file-1")  # already gone: fine

    assert kaleyra.uploads[room] == ["file-2"]
    assert kaleyra.calls("list_uploads")[0].query == {
        "room_id": room,
        "offset": "0",
        "limit": "100",
    }


async def test_virtual_backgrounds(client: KaleyraClient, kaleyra: FakeKaleyra) -> None:
    uploaded = await client.upload_virtual_background(b"\xff\xd8jpeg", "bg.jpg", "image/jpeg")
    alias = str(uploaded["background_alias"])
    company = await client.set_default_background(alias)
    assert company == {"name": "fake company", "default_background": alias}
    assert [r.method for r in kaleyra.requests] == ["POST", "PUT"]


async def test_list_users(client: KaleyraClient) -> None:
    await client.create_user("doc", "plus")
    assert await client.list_users(limit=10) == {
        "users": [{"id": "doc"}],
        "offset": 0,
        "limit": 10,
        "count": 1,
        "has_more": False,
    }


async def test_an_unknown_room_is_a_bad_answer(client: KaleyraClient) -> None:
    with pytest.raises(ProviderError) as raised:
        await client.get_room("missing")
    assert (raised.value.status, raised.value.message) == (
        502,
        "The bandyer provider failed to get a room: HTTP 404: room not found",
    )


async def test_rate_limits_are_waited_out_then_reported(
    client: KaleyraClient, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_user", Fault(status=429, retry_after="0", times=2))
    assert await client.create_user("doc", "plus") == "doc"
    assert len(kaleyra.calls("create_user")) == 3

    kaleyra.fail(
        "create_user", Fault(status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", times=3)
    )
    with pytest.raises(ProviderError) as raised:
        await client.create_user("pat", "basic")
    assert (raised.value.status, raised.value.message) == (
        503,
        "The bandyer provider failed to create a user: rate limited (HTTP 429)",
    )


async def test_a_timeout_is_retried_only_when_safe(
    client: KaleyraClient, room: str, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("get_room", Fault(delay=1.0))
    assert (await client.get_room(room))["status"] == "pending"
    assert len(kaleyra.calls("get_room")) == 2

    kaleyra.fail("create_room", Fault(delay=1.0))
    with pytest.raises(ProviderError) as raised:
        await client.create_room(SPEC)
    assert (raised.value.status, raised.value.message) == (
        504,
        "The bandyer provider failed to create a room: no answer within 0.5 s",
    )
    assert len(kaleyra.calls("create_room")) == 2  # the room fixture's, and this single try


async def creation_failing(client: KaleyraClient, deadline: float) -> ProviderError:
    """The error of a room's creation made (with its users) within `deadline` seconds."""
    await client.create_user("doc", "plus")
    await client.create_user("pat", "basic")
    with outbound.deadline(deadline), pytest.raises(ProviderError) as raised:
        await client.create_room(SPEC)
    return raised.value


async def test_a_creation_answered_after_its_timeout_still_names_its_room(
    client: KaleyraClient, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(lost=True, delay=0.7))  # made, answered too late
    failed = await creation_failing(client, deadline=5)
    assert (failed.status, failed.message) == (
        504,
        "The bandyer provider failed to create a room: no answer within 0.5 s",
    )
    assert failed.may_have_acted
    assert failed.late_id is not None
    [made] = kaleyra.rooms
    assert await failed.late_id == made  # read on after the timeout, to the deadline


async def test_a_late_answer_is_read_only_until_the_deadline(
    client: KaleyraClient, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(lost=True, delay=2.0))
    failed = await creation_failing(client, deadline=1)
    assert failed.late_id is not None
    assert await failed.late_id is None  # the deadline passed first: nothing learned
    assert len(kaleyra.rooms) == 1  # the limit docs/operations.md describes


async def test_only_so_many_late_answers_are_read_at_once(
    kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    policy = CallPolicy(timeout_seconds=0.05)
    options = ClientOptions(base_url=kaleyra_url, api_key=API_KEY, policy=policy)
    client = KaleyraClient(options, aiohttp.ClientSession())
    kaleyra.fail("create_room", Fault(lost=True, delay=5.0, times=outbound.MAX_LATE_READS + 1))
    late = [
        (await creation_failing(client, deadline=10)).late_id
        for _ in range(outbound.MAX_LATE_READS + 1)
    ]
    read = [answer for answer in late if answer is not None]
    assert len(read) == outbound.MAX_LATE_READS
    assert late[-1] is None  # each holds a connection: past the cap, one is let go
    await client.close()  # what is still read is let go
    reads = await asyncio.gather(*read, return_exceptions=True)
    assert all(isinstance(read, asyncio.CancelledError) for read in reads)


async def test_a_creation_whose_answer_never_comes_names_nothing(
    client: KaleyraClient, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(dropped=True))  # made, the connection dropped
    failed = await creation_failing(client, deadline=5)
    assert (failed.status, failed.message) == (
        503,
        "The bandyer provider failed to create a room: connection failed (ServerDisconnectedError)",
    )
    assert failed.may_have_acted
    assert failed.late_id is None
    assert len(kaleyra.rooms) == 1


async def test_a_created_room_missing_a_link_is_deleted_and_reported(
    client: KaleyraClient, kaleyra: FakeKaleyra
) -> None:
    provider = BandyerVideo(client)
    await client.create_user("doc", "plus")
    await client.create_user("pat", "basic")
    kaleyra.fail("create_room", Fault(body={"id": "room_x", "participants": []}))

    with pytest.raises(ProviderError) as raised:
        await provider.create_room(SPEC)

    assert (raised.value.status, raised.value.message) == (
        502,
        "The bandyer provider failed to create a room: no link for 2 participant(s)",
    )
    assert [call.path for call in kaleyra.calls("delete_room")] == ["/v2/rooms/room_x"]


async def test_an_answer_of_the_wrong_shape_is_a_bad_answer(
    client: KaleyraClient, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(body={"room": "no id here"}))
    with pytest.raises(ProviderError) as raised:
        await client.create_room(SPEC)
    assert (raised.value.status, raised.value.message) == (
        502,
        "The bandyer provider failed to create a room: the answer has no room id "
        "(docs/operations.md: a room may be left)",
    )
    assert raised.value.may_have_acted  # the reconciler counts the room that may be left


async def test_the_api_key_never_reaches_a_log_line_or_an_error(
    client: KaleyraClient, kaleyra: FakeKaleyra, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kaleyra.fail("create_user", Fault(status=500))
    kaleyra.fail("create_room", Fault(status=400))
    messages = []
    await client.create_user("doc", "plus")
    await client.create_user("pat", "basic")
    try:
        await client.create_room(SPEC)
    except ProviderError as error:
        messages.append(error.message)
    kaleyra.api_key = "another"
    try:
        await client.list_users()
    except ProviderError as error:
        messages.append(error.message)

    assert messages == [
        "The bandyer provider failed to create a room: HTTP 400: injected fault",
        "The bandyer provider failed to list users: HTTP 401: invalid api key",
    ]
    assert caplog.records, "the client logs its calls"
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
    assert API_KEY not in repr(client.options)


DOTS = "'.' and '..' (in any spelling) would be dropped from a URL path"


@pytest.mark.parametrize(
    ("room_id", "problem"),
    [
        ("..", DOTS),
        (".", DOTS),
        ("%2e%2E", DOTS),
        ("", "an empty value names nothing in a URL path"),
    ],
)
async def test_a_room_id_a_url_would_resolve_away_is_sent_nowhere(
    client: KaleyraClient, kaleyra: FakeKaleyra, room_id: str, problem: str
) -> None:
    """`/v2/rooms/..` is `/v2/`: the id is refused before anything is sent."""
    for operation, method in [
        ("get a room", client.get_room),
        ("delete a room", client.delete_room),
    ]:
        with pytest.raises(ProviderError) as raised:
            await method(room_id)
        assert (raised.value.status, raised.value.message) == (
            502,
            f"The bandyer provider failed to {operation}: room_id cannot be sent in a URL path: "
            f"{problem}",
        )
    assert kaleyra.requests == []
