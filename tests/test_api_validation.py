"""Bad input gets a 4xx whose message says what to change; never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import (
    DOCTOR,
    END,
    PATIENT,
    START,
    Client,
    create,
    error,
    join,
    person,
    raw_answer,
    stored_document,
    teleconsultation,
)

VALID = teleconsultation(2, DOCTOR)


def with_(**changes: Any) -> dict[str, Any]:
    body = {**VALID, **changes}
    return {key: value for key, value in body.items() if value is not None}


CREATE_CASES = [
    pytest.param(
        {},
        "participants: Missing data for required field.; "
        "start_date: Missing data for required field.",
        None,
        id="empty-body",
    ),
    pytest.param(
        with_(participants="doctor-1"),
        "participants: Must be an object {number, data} or an array of user ids.",
        None,
        id="participants-wrong-type",
    ),
    pytest.param(
        with_(participants={"data": [DOCTOR]}),
        "participants.number: Missing data for required field.",
        None,
        id="number-missing",
    ),
    pytest.param(
        with_(participants={"number": "2", "data": [DOCTOR]}),
        "participants.number: Not a valid integer.",
        None,
        id="number-as-string",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{"groups": ["doctor"], "fullName": "Joe"}]}),
        "participants.data[0].userExternalId: Missing data for required field.",
        None,
        id="external-id-missing",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{**DOCTOR, "groups": "doctor"}]}),
        "participants.data[0].groups: Not a valid list.",
        None,
        id="groups-not-a-list",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{**DOCTOR, "groups": []}]}),
        "participants.data[0].groups: Length must be between 1 and 50.",
        None,
        id="groups-empty",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{**DOCTOR, "group": "doctor"}]}),
        "participants.data[0].group: Give either groups or group, not both.",
        None,
        id="group-and-groups",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{**DOCTOR, "role": "admin"}]}),
        "participants.data[0].role: Unknown field.",
        None,
        id="unknown-participant-field",
    ),
    pytest.param(
        with_(title="Check-up"),
        "title: Unknown field.",
        None,
        id="unknown-field",
    ),
    pytest.param(
        with_(start_date="2030-02-22T15:30:00"),
        "start_date: The date-time has no time-zone offset (add Z or +hh:mm, "
        "as in 2030-02-22T15:30:00.000Z).",
        None,
        id="naive-date",
    ),
    pytest.param(
        with_(end_date="tomorrow"),
        "end_date: Not a date-time like 2030-02-22T15:30:00.000Z (date, T, time, offset).",
        None,
        id="not-a-date",
    ),
    pytest.param(
        with_(end_date="2030-02-22T15:00:00.000Z"),
        "end_date must be after start_date.",
        "end_date",
        id="end-before-start",
    ),
    pytest.param(
        with_(end_date=START),
        "end_date must be after start_date.",
        "end_date",
        id="end-equals-start",
    ),
    pytest.param(
        with_(end_date=None),
        "end_date (or duration_in_seconds) is required.",
        "end_date",
        id="no-end",
    ),
    pytest.param(
        with_(duration_in_seconds=3600),
        "Give either end_date or duration_in_seconds, not both.",
        "duration_in_seconds",
        id="end-and-duration",
    ),
    pytest.param(
        with_(end_date=None, duration_in_seconds=0),
        "duration_in_seconds: Must be greater than or equal to 1 and less than or equal to 2592000.",
        None,
        id="zero-duration",
    ),
    pytest.param(
        with_(participants={"number": 1, "data": [DOCTOR]}),
        "participants.number must be between 2 and 25 for this video provider; got 1.",
        "participants.number",
        id="number-too-small",
    ),
    pytest.param(
        with_(participants={"number": 26, "data": [DOCTOR]}),
        "participants.number must be between 2 and 25 for this video provider; got 26.",
        "participants.number",
        id="number-too-large",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [DOCTOR, PATIENT, person("x", ["patient"], "X")]}),
        "3 participants were given but participants.number is 2.",
        "participants.data",
        id="more-data-than-number",
    ),
    pytest.param(
        with_(participants={"number": 3, "data": [DOCTOR, DOCTOR]}),
        "Participant 'doctor-1' appears more than once.",
        "participants.data",
        id="repeated-participant",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [person("x", ["visitor"], "X")]}),
        "Participant 'x' belongs to none of the configured groups (doctor, patient); "
        "got ['visitor'].",
        "participants.data[0]",
        id="group-matches-no-level",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{"userExternalId": "x", "groups": ["doctor"]}]}),
        "participants.data[0].fullName is required with the static identity provider.",
        "participants.data[0].fullName",
        id="static-needs-full-name",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{"userExternalId": "x", "fullName": "X"}]}),
        "participants.data[0].groups is required with the static identity provider: "
        "a non-empty array of group names.",
        "participants.data[0].groups",
        id="static-needs-groups",
    ),
    pytest.param(
        with_(participants=["doctor-1", "patient-1"]),
        "participants as an array of user ids needs an identity provider that knows the users; "
        "the 'static' identity provider does not. Send "
        '{"number": n, "data": [{"userExternalId", "groups", "fullName"}]} instead.',
        "participants",
        id="id-array-in-static-mode",
    ),
    pytest.param(
        with_(participants=["doctor-1"]),
        "participants as an array of user ids needs an identity provider that knows the users; "
        "the 'static' identity provider does not. Send "
        '{"number": n, "data": [{"userExternalId", "groups", "fullName"}]} instead.',
        "participants",
        id="id-array-in-static-mode-is-refused-before-counting",
    ),
    pytest.param(
        with_(end_date=None, duration_in_seconds=10**20),
        "duration_in_seconds: Must be greater than or equal to 1 and less than or equal to 2592000.",
        None,
        id="huge-duration",
    ),
    pytest.param(
        with_(start_date="0001-01-01T00:00:00+14:00"),
        "start_date: The date must be between 1970 and 9000.",
        None,
        id="date-that-overflows-in-utc",
    ),
    pytest.param(
        with_(start_date="9999-12-31T00:00:00Z", end_date=None, duration_in_seconds=172800),
        "start_date: The date must be between 1970 and 9000.",
        None,
        id="date-near-the-end-of-time",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{**DOCTOR, "userExternalId": "x" * 257}]}),
        "participants.data[0].userExternalId: Length must be between 1 and 256.",
        None,
        id="external-id-too-long",
    ),
    pytest.param(
        with_(participants={"number": 2, "data": [{**DOCTOR, "groups": ["g"] * 51}]}),
        "participants.data[0].groups: Length must be between 1 and 50.",
        None,
        id="too-many-groups",
    ),
    pytest.param(
        with_(participants=["doctor-1", 3]),
        "participants: An array of participants must hold user id strings of 1 to 256 characters.",
        None,
        id="id-array-with-a-number",
    ),
]


@pytest.mark.parametrize(("body", "message", "path"), CREATE_CASES)
async def test_create_refuses_bad_input(
    client: Client, body: Any, message: str, path: str | None
) -> None:
    response = await client.post("/teleconsultation", json=body)

    assert response.status == 400
    assert await response.json() == error(400, message, path=path)


async def test_malformed_json_is_a_400(client: Client) -> None:
    response = await client.post(
        "/teleconsultation", data=b'{"participants": ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        "The body is not valid JSON: Expecting value: line 1 column 18 (char 17).",
        code="malformed_body",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"a": 1, "a": 2}',
            "The body is not valid JSON: the key 'a' appears twice in one object.",
        ),
        (b"[" * 60_000, "The body is not valid JSON: it is nested too deeply."),
        (
            b'{"userExternalId": "\\ud800"}',
            "The body is not valid JSON: it holds an invalid \\u escape (an unpaired surrogate).",
        ),
        (b'{"a": "d\xe9"}', "The body is not valid UTF-8."),
    ],
)
async def test_json_that_would_break_later_is_a_400(
    client: Client, body: bytes, message: str
) -> None:
    response = await client.post(
        "/teleconsultation", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == error(400, message, code="malformed_body")


async def test_a_body_that_does_not_decompress_is_a_400(client: Client) -> None:
    response = await client.post(
        "/teleconsultation",
        data=b"not gzip",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        "The body could not be read: Can not decode content-encoding: gzip.",
        code="malformed_body",
    )


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"3"])
async def test_a_body_that_is_not_an_object_is_a_400(client: Client, body: bytes) -> None:
    response = await client.post(
        "/teleconsultation", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert await response.json() == error(400, "The body must be a JSON object.")


async def test_a_form_body_is_a_415(client: Client) -> None:
    response = await client.post("/teleconsultation", data={"participants": "x"})
    assert response.status == 415
    assert await response.json() == error(
        415,
        "The body must be JSON sent with Content-Type: application/json, "
        "not application/x-www-form-urlencoded.",
    )


async def test_a_content_type_that_is_not_utf_8_is_a_415(client: Client) -> None:
    """The message quotes the header, which aiohttp read with a lone surrogate: the answer
    is still our JSON error, escaped, not a 500."""
    assert client.server.port is not None
    answer = await raw_answer(
        client.server.port,
        b"POST /teleconsultation HTTP/1.1\r\nHost: x\r\nmiauserid: doctor-1\r\n"
        b"Content-Type: text/\xff\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 415 Unsupported Media Type\r\n"), head
    assert b"Content-Type: application/json; charset=utf-8\r\n" in head
    assert json.loads(body) == error(
        415,
        "The body must be JSON sent with Content-Type: application/json, not text/\udcff.",
    )


async def test_patch_with_nothing_to_change_is_a_400(client: Client) -> None:
    room_id = await create(client, VALID)
    response = await client.patch(f"/teleconsultation/{room_id}", json={})
    assert response.status == 400
    assert await response.json() == error(
        400,
        "body: Give at least one of participants, start_date, end_date, duration_in_seconds.",
    )


async def test_patch_keeps_the_end_when_only_the_start_moves(client: Client) -> None:
    room_id = await create(client, VALID)
    response = await client.patch(f"/teleconsultation/{room_id}", json={"start_date": END})
    assert response.status == 400
    assert await response.json() == error(
        400, "end_date must be after start_date.", path="end_date"
    )


def already_past(end: str) -> dict[str, Any]:
    """The 400 for a teleconsultation that ends at `end`, on 2030-02-22 (BEFORE_START, the
    tests' now, is 12:00): its links would be expired at once."""
    return error(
        400,
        f"end_date 2030-02-22T{end}.000Z is already past (the service's time is "
        "2030-02-22T12:00:00.000Z): a teleconsultation must end in the future.",
        path="end_date",
    )


@pytest.mark.parametrize(
    ("schedule", "end"),
    [
        ({"start_date": "2030-02-22T10:00:00Z", "end_date": "2030-02-22T11:00:00Z"}, "11:00:00"),
        ({"start_date": "2030-02-22T10:00:00Z", "duration_in_seconds": 3600}, "11:00:00"),
        ({"start_date": "2030-02-22T10:00:00Z", "end_date": "2030-02-22T12:00:00Z"}, "12:00:00"),
    ],
)
async def test_a_teleconsultation_that_already_ended_is_a_400(
    client: Client, schedule: dict[str, Any], end: str
) -> None:
    response = await client.post(
        "/teleconsultation", json={"participants": VALID["participants"], **schedule}
    )
    assert (response.status, await response.json()) == (400, already_past(end))

    room_id = await create(client, VALID)
    before = await stored_document(client, room_id)
    response = await client.patch(f"/teleconsultation/{room_id}", json=schedule)
    assert (response.status, await response.json()) == (400, already_past(end))
    assert await stored_document(client, room_id) == before


async def test_a_start_already_past_with_an_end_ahead_is_accepted(client: Client) -> None:
    """The README tour moves a start to now; the call is on, its links handed out at once."""
    started = {"start_date": "2030-02-22T11:00:00Z", "end_date": "2030-02-22T12:00:01Z"}
    room_id = await create(client, {**teleconsultation(2, DOCTOR, PATIENT), **started})
    status, body = await join(client, room_id, "patient-1")
    assert status == 200
    assert body["accessLinkURL"] is not None

    other = await create(client, VALID)
    response = await client.patch(f"/teleconsultation/{other}", json=started)
    assert response.status == 204


@pytest.mark.parametrize(
    ("body", "message", "path"),
    [
        ({}, "userExternalId: Missing data for required field.", None),
        ({"userExternalId": ""}, "userExternalId: Length must be between 1 and 256.", None),
        (
            {"userExternalId": "x", "groups": ["patient"]},
            "body.fullName is required with the static identity provider.",
            "body.fullName",
        ),
        (
            {**DOCTOR, "userExternalId": "doctor-1"},
            "Participant 'doctor-1' is already in this teleconsultation.",
            "userExternalId",
        ),
    ],
)
async def test_add_participant_refuses_bad_input(
    client: Client, body: dict[str, Any], message: str, path: str | None
) -> None:
    room_id = await create(client, teleconsultation(3, DOCTOR))
    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=body)
    assert response.status == 400
    assert await response.json() == error(400, message, path=path)


async def test_add_to_a_complete_teleconsultation_is_a_400(client: Client) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data", json=person("x", ["patient"], "X")
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        "This teleconsultation already has all its 2 participants; "
        "PATCH its participants to change them.",
    )


@pytest.mark.parametrize("room_id", ["abc", "0123456789abcdef0123456g", "ZZZ" * 8, "%20"])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"start_date": START}),
        ("DELETE", "", None),
        ("POST", "/participants/data", PATIENT),
    ],
)
async def test_malformed_ids_are_404(
    client: Client, room_id: str, method: str, suffix: str, body: Any
) -> None:
    response = await client.request(
        method, f"/teleconsultation/{room_id}{suffix}", json=body, headers={"miauserid": "x"}
    )
    assert response.status == 404
    shown = " " if room_id == "%20" else room_id
    assert await response.json() == error(
        404,
        f"No teleconsultation has the id {shown!r}: it never existed or was deleted.",
        f"Room with id {shown} not found on CRUD",
    )


async def test_unknown_route_and_method_get_json_errors(client: Client) -> None:
    response = await client.get("/consultations")
    assert response.status == 404
    assert await response.json() == error(
        404, "There is no route GET /consultations.", code="no_route"
    )

    response = await client.put("/teleconsultation/0123456789abcdef01234567")
    assert response.status == 405
    assert await response.json() == error(
        405,
        "PUT is not allowed on /teleconsultation/0123456789abcdef01234567; use DELETE, GET, PATCH.",
    )
    assert response.headers["Allow"] == "DELETE, GET, PATCH"
