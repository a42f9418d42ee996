"""The original's later endpoints, on both video plugins (bandyer against the fake Kaleyra)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

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
    error,
    fake_video,
    join,
    provider_room,
    teleconsultation,
)

JPEG = b"\xff\xd8\xff\xe0" + b"0" * 2048
OPERATOR = {"miauserid": "operator-1", "miausergroups": "ops"}
"""A member of ADMIN_GROUPS=ops: the company's backgrounds are theirs to change."""


@dataclass
class Plugin:
    """A client on one video plugin, and a look at that provider's own state."""

    name: str
    client: Client
    kaleyra: FakeKaleyra

    def uploads(self, room: str) -> list[str]:
        if self.name == "fake":
            return fake_video(self.client).uploads.setdefault(room, [])
        return self.kaleyra.uploads.setdefault(room, [])

    def users(self) -> set[str]:
        if self.name == "fake":
            return set(fake_video(self.client).users)
        return set(self.kaleyra.users)


@pytest.fixture(params=["fake", "bandyer"])
async def plugin(
    request: pytest.FixtureRequest, make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra
) -> Plugin:
    config = {
        "privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}},
        "groupsWithBackgroundList": ["doctor"],
    }
    environ = {"TELECONSULTATION_DELETE_UPLOADS": "true", "ADMIN_GROUPS": "ops"}
    if request.param == "bandyer":
        environ.update(bandyer_env(kaleyra_url))
    return Plugin(request.param, await make_client(config, **environ), kaleyra)


# -- GET: details, language, background ------------------------------------------------------


async def test_links_follow_language_and_background(plugin: Plugin, clock: FrozenClock) -> None:
    room_id = await create(plugin.client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)

    _, doctor = await join(plugin.client, room_id, "doctor-1")
    _, patient = await join(plugin.client, room_id, "patient-1")
    assert doctor["accessLinkURL"].endswith("?l=it&vb=image")  # doctors get the background
    assert patient["accessLinkURL"].endswith("?l=it")
    assert doctor["details"]["status"] == "pending"

    response = await plugin.client.get(
        f"/teleconsultation/{room_id}?language=en&useBackground=false&_=123",
        headers={"miauserid": "doctor-1"},
    )
    assert response.status == 200
    assert (await response.json())["accessLinkURL"].endswith("?l=en")

    response = await plugin.client.get(
        f"/teleconsultation/{room_id}?useBackground=maybe", headers={"miauserid": "doctor-1"}
    )
    assert response.status == 400
    assert await response.json() == error(400, "useBackground: Not a valid boolean.")


async def test_no_details_before_the_room(plugin: Plugin) -> None:
    room_id = await create(plugin.client, teleconsultation(2, DOCTOR))
    _, body = await join(plugin.client, room_id, "doctor-1")
    assert "details" not in body


async def test_details_are_dropped_when_the_provider_fails(
    make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url))
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    kaleyra.fail("get_room", Fault(status=500, times=3))
    status, body = await join(client, room_id, "doctor-1")
    assert status == 200
    assert "details" not in body
    assert [c.path for c in kaleyra.calls("get_room")] == [
        f"/v2/rooms/{await provider_room(client, room_id)}"
    ] * 3


# -- DELETE uploads ------------------------------------------------------------------------------


async def test_uploads_are_deleted_and_a_retry_finishes(plugin: Plugin) -> None:
    room_id = await create(plugin.client, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(plugin.client, room_id)
    plugin.uploads(room).extend(["file-1", "file-2"])
    if plugin.name == "bandyer":
        plugin.kaleyra.fail("delete_upload", Fault(status=500, times=6))  # every attempt fails

    response = await plugin.client.delete(f"/teleconsultation/{room_id}/uploads")
    assert response.status == 200
    first = await response.json()
    if plugin.name == "bandyer":
        assert first == {"total": 2, "deleted": 0}
        assert plugin.uploads(room) == ["file-1", "file-2"]
        response = await plugin.client.delete(f"/teleconsultation/{room_id}/uploads")
        assert await response.json() == {"total": 2, "deleted": 2}  # the retry finishes
        assert [c.query for c in plugin.kaleyra.calls("list_uploads")] == [
            {"room_id": room, "offset": "0", "limit": "100"}
        ] * 2
    else:
        assert first == {"total": 2, "deleted": 2}
    assert plugin.uploads(room) == []


async def test_uploads_without_a_room_or_teleconsultation(plugin: Plugin) -> None:
    room_id = await create(plugin.client, teleconsultation(2, DOCTOR))
    response = await plugin.client.delete(f"/teleconsultation/{room_id}/uploads")
    assert (response.status, await response.json()) == (200, {"total": 0, "deleted": 0})

    unknown = "0123456789abcdef01234567"
    response = await plugin.client.delete(f"/teleconsultation/{unknown}/uploads")
    assert response.status == 404


async def test_deleting_uploads_is_off_by_default(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    fake_video(client).uploads[room] = ["file-1"]

    response = await client.delete(f"/teleconsultation/{room_id}/uploads")

    assert response.status == 204
    assert fake_video(client).uploads[room] == ["file-1"]


async def test_kaleyra_file_keys_travel_as_one_whole_path_segment(
    make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra, log_lines: LogLines
) -> None:
    """Each key Kaleyra lists goes back in `DELETE /v2/uploads/<key>`: a key `..` made that
    `DELETE /v2/` (a JSON 404 there would have counted as deleted); now it is sent nowhere.
    Odd keys arrive exactly as listed."""
    client = await make_client(TELECONSULTATION_DELETE_UPLOADS="true", **bandyer_env(kaleyra_url))
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    room = await provider_room(client, room_id)
    odd = ["a/b", "a%2F..%2Fb", "c d?e#f", "..."]
    kaleyra.uploads[room] = [*odd, ".."]

    response = await client.delete(f"/teleconsultation/{room_id}/uploads")

    assert (response.status, await response.json()) == (200, {"total": 5, "deleted": 4})
    assert kaleyra.uploads[room] == [".."]
    assert [call.path for call in kaleyra.calls("delete_upload")] == [
        f"/v2/uploads/{key}" for key in odd
    ]
    [warning] = [line for line in log_lines.parsed() if line["level"] >= 40]
    assert warning["msg"] == (
        "could not delete an uploaded file: The bandyer provider failed to delete a file: key "
        "cannot be sent in a URL path: '.' and '..' (in any spelling) would be dropped from a URL "
        "path"
    )


# -- POST /credentials ---------------------------------------------------------------------------


async def test_credentials_for_the_caller(plugin: Plugin) -> None:
    response = await plugin.client.post(
        "/credentials", json={"expiresIn": 7200}, headers={"miauserid": "nurse-9"}
    )
    assert response.status == 201
    body = await response.json()
    assert sorted(body) == ["accessToken", "bandyerUserId", "expiresAt"]
    assert body["bandyerUserId"] == "nurse-9"
    assert "nurse-9" in plugin.users()  # the provider user was created on the way
    if plugin.name == "bandyer":
        [call] = plugin.kaleyra.calls("sdk_credentials")
        assert call.body == {"user_id": "nurse-9", "expires_in": 7200}

    response = await plugin.client.post("/credentials", json={}, headers={"miauserid": "nurse-9"})
    assert response.status == 201  # the default lifetime, 3600 s


@pytest.mark.parametrize(
    ("body", "headers", "status", "message", "path"),
    [
        ({}, {}, 401, "The request does not say who is calling (see userIdPathInRequest).", None),
        (
            {"expiresIn": 60},
            {"miauserid": "u"},
            400,
            "expiresIn must be between 360 and 86400 seconds for this video provider; got 60.",
            "expiresIn",
        ),
        ({"expiresIn": "3600"}, {"miauserid": "u"}, 400, "expiresIn: Not a valid integer.", None),
    ],
)
async def test_credentials_refused(
    plugin: Plugin,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    message: str,
    path: str | None,
) -> None:
    response = await plugin.client.post("/credentials", json=body, headers=headers)
    assert response.status == status
    expected = error(status, message, "Unauthorized user" if status == 401 else None, path=path)
    assert await response.json() == expected


# -- virtual backgrounds ---------------------------------------------------------------------------


def image(content: bytes, content_type: str, field: str = "virtual_background") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, io.BytesIO(content), filename="bg.jpg", content_type=content_type)
    return form


async def test_a_background_is_uploaded_and_made_the_default(plugin: Plugin) -> None:
    response = await plugin.client.post(
        "/settings/background-image", data=image(JPEG, "image/jpeg"), headers=OPERATOR
    )
    assert response.status == 200
    background = (await response.json())["virtual_background"]
    assert sorted(background) == ["background_alias", "creation_date", "url"]

    response = await plugin.client.patch(
        "/settings/update",
        json={"background_alias": background["background_alias"]},
        headers=OPERATOR,
    )
    assert response.status == 200
    company = (await response.json())["company"]
    assert company["default_background"] == background["background_alias"]  # v2's name
    if plugin.name == "bandyer":
        assert [c.method for c in plugin.kaleyra.requests] == ["POST", "PUT"]
        assert plugin.kaleyra.requests[1].body == {
            "default_background": background["background_alias"]
        }


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            lambda: image(b"\x89PNG....", "image/png"),
            415,
            "virtual_background must be a JPEG image (image/jpeg); got image/png.",
        ),
        (
            lambda: image(JPEG + b"0" * (10 * 1024 * 1024), "image/jpeg"),
            413,
            "virtual_background may be at most 10 MB.",
        ),
        (
            lambda: image(JPEG, "image/jpeg", field="picture"),
            400,
            "The multipart body has no virtual_background field.",
        ),
    ],
)
async def test_a_bad_background_is_refused_before_anything_is_sent(
    plugin: Plugin, data: Any, status: int, message: str
) -> None:
    response = await plugin.client.post("/settings/background-image", data=data(), headers=OPERATOR)
    assert response.status == status
    assert await response.json() == error(status, message, path="virtual_background")
    assert plugin.kaleyra.calls("upload_background") == []


async def test_a_background_sent_as_json_is_refused(make_client: MakeClient) -> None:
    client = await make_client(ADMIN_GROUPS="ops")
    response = await client.post(
        "/settings/background-image", json={"virtual_background": "x"}, headers=OPERATOR
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        "Send the image as multipart/form-data, field virtual_background.",
        path="virtual_background",
    )


async def test_an_unknown_background_alias_is_a_404(plugin: Plugin) -> None:
    response = await plugin.client.patch(
        "/settings/update", json={"background_alias": "bg-nope"}, headers=OPERATOR
    )
    assert response.status == 404
    assert await response.json() == error(
        404, "background_alias 'bg-nope' names no background of the company."
    )


async def test_a_malformed_multipart_body_is_a_400(make_client: MakeClient) -> None:
    client = await make_client(ADMIN_GROUPS="ops")
    boundary = "e04daf0c7a063642e1206e19467a9090"
    response = await client.post(
        "/settings/background-image",
        data=f"--{boundary}\r\n-82338--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **OPERATOR},
    )
    assert response.status == 400
    assert await response.json() == error(
        400, "The multipart body could not be read.", code="malformed_body"
    )


async def test_credentials_without_a_body_use_the_default(client: Client) -> None:
    response = await client.post("/credentials", headers={"miauserid": "u-1"})
    assert response.status == 201
