"""GET /teleconsultations: who lists whose, filters, and keyset pages that stay stable."""

from __future__ import annotations

from typing import Any

from tests.helpers import (
    DOCTOR,
    NURSE,
    PATIENT,
    Client,
    MakeClient,
    create,
    error,
    teleconsultation,
)

MANAGER = {"miauserid": "secretary-1", "miausergroups": "secretaries"}
DOCTOR_CALLS = {"miauserid": "doctor-1"}
PATIENT_CALLS = {"miauserid": "patient-1"}


def day(n: int, hour: int = 10) -> str:
    return f"2030-03-{n:02d}T{hour:02d}:00:00.000Z"


def on_day(n: int, *people: dict[str, Any], hour: int = 10, number: int = 2) -> dict[str, Any]:
    return teleconsultation(number, *people, start=day(n, hour), end=day(n, hour + 1))


async def manager_client(make_client: MakeClient) -> Client:
    return await make_client(MANAGER_GROUPS="secretaries")


async def listed(
    client: Client, headers: dict[str, str], query: str = ""
) -> tuple[list[str], str | None]:
    response = await client.get(f"/teleconsultations{query}", headers=headers)
    body = await response.json()
    assert response.status == 200, body
    return [item["id"] for item in body["items"]], body["nextCursor"]


async def every_page(client: Client, headers: dict[str, str], query: str) -> list[str]:
    ids, cursor = await listed(client, headers, query)
    while cursor is not None:
        more, cursor = await listed(client, headers, f"{query}&cursor={cursor}")
        ids += more
    return ids


async def test_a_participant_lists_their_own_teleconsultations(client: Client) -> None:
    mine = await create(client, on_day(2, DOCTOR, PATIENT))
    await create(client, on_day(1, DOCTOR, NURSE))
    also_mine = await create(client, on_day(3, PATIENT, number=2))

    response = await client.get("/teleconsultations", headers=PATIENT_CALLS)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body == {
        "items": [
            {
                "id": mine,
                "start_date": "2030-03-02T10:00:00.000Z",
                "end_date": "2030-03-02T11:00:00.000Z",
                "createdAt": "2030-02-22T12:00:00.000Z",
                "updatedAt": "2030-02-22T12:00:00.000Z",
                "state": "room_ready",
                "participantsNumber": 2,
                "participants": [
                    {"userExternalId": "doctor-1", "fullName": "Joe Smith"},
                    {"userExternalId": "patient-1", "fullName": "Jane Doe"},
                ],
            },
            {
                "id": also_mine,
                "start_date": "2030-03-03T10:00:00.000Z",
                "end_date": "2030-03-03T11:00:00.000Z",
                "createdAt": "2030-02-22T12:00:00.000Z",
                "updatedAt": "2030-02-22T12:00:00.000Z",
                "state": "waiting_for_participants",
                "participantsNumber": 2,
                "participants": [{"userExternalId": "patient-1", "fullName": "Jane Doe"}],
            },
        ],
        "nextCursor": None,
    }
    # Asking for one's own id is the same; anyone else's is a manager's business.
    assert await listed(client, PATIENT_CALLS, "?participant=patient-1") == (
        [mine, also_mine],
        None,
    )
    response = await client.get("/teleconsultations?participant=doctor-1", headers=PATIENT_CALLS)
    assert response.status == 403
    assert await response.json() == error(
        403,
        "Only members of MANAGER_GROUPS may list another participant's teleconsultations; "
        "leave out `participant` (or give your own id) to list yours.",
    )
    assert await listed(client, {"miauserid": "stranger"}) == ([], None)


async def test_an_unknown_caller_lists_nothing(client: Client) -> None:
    await create(client, on_day(1, DOCTOR, PATIENT))
    response = await client.get("/teleconsultations")
    assert response.status == 401
    assert await response.json() == error(
        401,
        "The request does not say who is calling (see userIdPathInRequest).",
        "Unauthorized user",
    )


async def test_a_manager_lists_anyone_s(make_client: MakeClient) -> None:
    client = await manager_client(make_client)
    first = await create(client, on_day(1, DOCTOR, NURSE), MANAGER)
    second = await create(client, on_day(2, DOCTOR, PATIENT), MANAGER)
    third = await create(client, on_day(3, PATIENT, number=2), MANAGER)

    assert await listed(client, MANAGER, "?participant=patient-1") == ([second, third], None)
    assert await listed(client, MANAGER) == ([first, second, third], None)
    # A participant who is not a manager still sees their own only, whatever the header says.
    not_manager = {"miauserid": "doctor-1", "miausergroups": "doctors"}
    assert await listed(client, not_manager) == ([first, second], None)


async def test_filters_combine(client: Client) -> None:
    early = await create(client, on_day(1, DOCTOR, PATIENT))
    waiting = await create(client, on_day(2, DOCTOR, number=2))
    ready = await create(client, on_day(3, DOCTOR, NURSE))
    cancelled = await create(client, on_day(4, DOCTOR, PATIENT))
    await create(client, on_day(5, DOCTOR, PATIENT))
    response = await client.delete(f"/teleconsultation/{cancelled}")
    assert response.status == 204

    window = f"?from={day(2)}&to={day(5)}"
    assert await listed(client, DOCTOR_CALLS, window) == ([waiting, ready, cancelled], None)
    assert await listed(client, DOCTOR_CALLS, f"{window}&state=room_ready") == ([ready], None)
    assert await listed(client, DOCTOR_CALLS, f"{window}&state=cancelled") == ([cancelled], None)
    assert await listed(client, DOCTOR_CALLS, "?state=waiting_for_participants") == (
        [waiting],
        None,
    )
    # Offsets are understood: 11:00+01:00 is 10:00Z, so `to` excludes day 1's and `from`
    # includes it.
    assert await listed(client, PATIENT_CALLS, "?to=2030-03-01T11:00:00%2B01:00") == ([], None)
    from_one = await listed(client, PATIENT_CALLS, "?from=2030-03-01T11:00:00%2B01:00&limit=1")
    assert from_one[0] == [early]


async def test_pages_are_stable_while_records_are_inserted(client: Client) -> None:
    start_of: dict[str, int] = {}

    async def made(n: int, *people: dict[str, Any]) -> str:
        room_id = await create(client, on_day(n, *people))
        start_of[room_id] = n
        return room_id

    def position(room_id: str) -> tuple[int, str]:
        return start_of[room_id], room_id

    def in_order() -> list[str]:
        """By start, then id: ids are random, so records on one start are in no creation
        order."""
        return sorted(start_of, key=position)

    for n in (2, 4, 6, 8, 10):
        await made(n, DOCTOR, PATIENT)
    await made(4, DOCTOR, NURSE)  # two on the same start: their order is by id

    first, cursor = await listed(client, DOCTOR_CALLS, "?limit=2")
    assert first == in_order()[:2]
    # Inserted between reads: one before the cursor (never shown now), one on the cursor's
    # start (shown only when after it by id), one later.
    for n in (1, 4, 9):
        await made(n, DOCTOR, PATIENT)
    rest: list[str] = []
    while cursor is not None:
        page, cursor = await listed(client, DOCTOR_CALLS, f"?limit=2&cursor={cursor}")
        rest += page
    assert rest == [i for i in in_order() if position(i) > position(first[-1])]
    # Read again from the start: everything once, in order; a page that ends exactly at the
    # last item says there is no more.
    assert await every_page(client, DOCTOR_CALLS, "?limit=3") == in_order()


async def test_bad_filters_are_400s_that_say_what_to_change(client: Client) -> None:
    cases = {
        "?from=2030-03-01T10:00:00": error(
            400,
            "from: The date-time has no time-zone offset (add Z or +hh:mm, as in "
            "2030-02-22T15:30:00.000Z).",
        ),
        "?to=tomorrow": error(
            400, "to: Not a date-time like 2030-02-22T15:30:00.000Z (date, T, time, offset)."
        ),
        "?state=done": error(
            400,
            "state: Must be one of: waiting_for_participants, room_ready, ended, cancelled.",
        ),
        "?limit=0": error(
            400, "limit: Must be greater than or equal to 1 and less than or equal to 100."
        ),
        "?limit=1000": error(
            400, "limit: Must be greater than or equal to 1 and less than or equal to 100."
        ),
        "?cursor=WzEsImFiYyJd": error(
            400,
            "The cursor is not one this service handed out; pass `nextCursor` from the "
            "previous page as it is, or start again without a cursor.",
            path="cursor",
        ),
        "?participants=doctor-1": error(400, "participants: Unknown field."),
        f"?from={day(3)}&to={day(2)}": error(400, "`to` must be later than `from`.", path="to"),
    }
    for query, expected in cases.items():
        response = await client.get(f"/teleconsultations{query}", headers=DOCTOR_CALLS)
        assert (query, response.status, await response.json()) == (query, 400, expected)
