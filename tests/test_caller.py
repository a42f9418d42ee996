"""Who is calling: `userIdPathInRequest` steps, as unit rules and through GET."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from teleconsult.api.caller import caller_id, default_path
from teleconsult.configuration.service_config import PathStep
from tests.helpers import DOCTOR, PATIENT, MakeClient, create, error, teleconsultation

PROPERTIES_PATH = (
    PathStep("headers", "object"),
    PathStep("miauserproperties", "object"),
    PathStep("customUserId", "json"),
)


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


@pytest.mark.parametrize(
    ("request_headers", "steps", "expected"),
    [
        (headers(miauserid="u1"), default_path("miauserid"), "u1"),
        (headers(MiaUserId="u1"), default_path("miauserid"), "u1"),
        (headers(x_user="u2"), default_path("x-user"), "u2"),
        (headers(), default_path("miauserid"), None),
        (headers(miauserid=""), default_path("miauserid"), None),
        (headers(miauserproperties=json.dumps({"customUserId": "c7"})), PROPERTIES_PATH, "c7"),
        (headers(miauserproperties=json.dumps({"customUserId": 7})), PROPERTIES_PATH, "7"),
        (headers(miauserproperties=json.dumps({"customUserId": True})), PROPERTIES_PATH, None),
        (headers(miauserproperties=json.dumps({"customUserId": {"a": 1}})), PROPERTIES_PATH, None),
        (headers(miauserproperties="{not json"), PROPERTIES_PATH, None),
        (headers(miauserproperties=json.dumps(["c7"])), PROPERTIES_PATH, None),
        (headers(), PROPERTIES_PATH, None),
        (
            headers(ids=json.dumps({"all": ["first", "second"]})),
            (
                PathStep("headers", "object"),
                PathStep("ids", "object"),
                PathStep("all", "json"),
                PathStep(1, "array"),
            ),
            "second",
        ),
        (
            headers(ids=json.dumps({"all": ["first"]})),
            (
                PathStep("headers", "object"),
                PathStep("ids", "object"),
                PathStep("all", "json"),
                PathStep(5, "array"),
            ),
            None,
        ),
        (
            headers(ids="plain"),
            (PathStep("headers", "object"), PathStep("ids", "object"), PathStep(0, "array")),
            None,
        ),
    ],
)
def test_caller_id_follows_the_steps(
    request_headers: CIMultiDictProxy[str], steps: tuple[PathStep, ...], expected: str | None
) -> None:
    assert caller_id(request_headers, steps) == expected


CONFIG = {
    "privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}},
    "userIdPathInRequest": [
        {"from": "headers", "extract": "object"},
        {"from": "miauserproperties", "extract": "object"},
        {"from": "customUserId", "extract": "json"},
    ],
}


async def test_get_identifies_the_caller_through_the_configured_path(
    make_client: MakeClient,
) -> None:
    client = await make_client(CONFIG)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))

    response = await client.get(
        f"/teleconsultation/{room_id}",
        headers={"miauserproperties": json.dumps({"customUserId": "patient-1"})},
    )
    assert response.status == 200
    assert (await response.json())["bandyerUserId"] == "patient-1"

    for bad in ["{oops", json.dumps({"other": "patient-1"}), json.dumps("patient-1")]:
        response = await client.get(
            f"/teleconsultation/{room_id}", headers={"miauserproperties": bad}
        )
        assert response.status == 401, bad
        assert await response.json() == error(
            401,
            "The request does not say who is calling (see userIdPathInRequest).",
            "Unauthorized user",
        )


async def test_userid_header_key_names_the_header(make_client: MakeClient) -> None:
    client = await make_client(USERID_HEADER_KEY="X-Caller")
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))

    response = await client.get(f"/teleconsultation/{room_id}", headers={"x-caller": "doctor-1"})
    assert response.status == 200

    response = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    assert response.status == 401


async def test_an_unidentified_caller_learns_nothing_about_ids(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/teleconsultation/0123456789abcdef01234567")
    assert response.status == 401


async def test_a_caller_header_nested_too_deeply_is_unauthorized(make_client: MakeClient) -> None:
    client = await make_client(CONFIG)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.get(
        f"/teleconsultation/{room_id}", headers={"miauserproperties": "[" * 5000}
    )
    assert response.status == 401
