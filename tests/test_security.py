"""Attacks on the running service (issue 12), each kept as a test that failed before its fix.

Each section names the defect it guards against. They go through the HTTP API as
an attacker would, or through a served process where only a real server shows it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from teleconsult.configuration.settings import Settings
from teleconsult.core.reconciler import PURGE_BATCH
from teleconsult.observability import logs, redaction
from teleconsult.plugin import stable_user_id
from teleconsult.services import SERVICES
from teleconsult.store import open_store
from teleconsult.store.base import KeyClaim
from teleconsult.store.sqlite.connection import SQLiteConnection
from tests.fake_jwks import AUDIENCE, ISSUER, SigningKeys
from tests.fakes.kaleyra import FakeKaleyra, Fault
from tests.helpers import (
    API_KEY,
    DOCTOR,
    NURSE,
    PATIENT,
    START,
    Client,
    FrozenClock,
    LogLines,
    MakeClient,
    bandyer_env,
    bearer,
    create,
    error,
    fake_video,
    first_line,
    in_a_request_scope,
    join,
    person,
    raw_answer,
    raw_get,
    redactor_of,
    served,
    teleconsultation,
)

Server = Callable[[web.Application], Awaitable[TestServer]]
JSON = {"Content-Type": "application/json"}


# -- 1. Redaction must be linear in its input, whatever the input ------------------------------


HOSTILE = [
    "/" + "z" * 1_000_000,  # the attack: one long run without whitespace
    "eyJ-" * 250_000,  # JWT starts everywhere, no dots
    "xeyJ" * 250_000 + ".a.b",
    "token" + " " * 1_000_000 + "x",
    "Authorization" + " " * 1_000_000 + "x",
    "://a:" + "b" * 1_000_000,
    "bearer " * 150_000,
    "/fake-video/join/{" * 60_000,  # a marker everywhere, each one a template
    "Cookie:" + " " * 1_000_000 + "x",
]


@pytest.mark.parametrize("text", HOSTILE, ids=[f"shape-{i}" for i in range(len(HOSTILE))])
def test_a_megabyte_of_hostile_text_is_redacted_in_bounded_time(text: str) -> None:
    """Not a speed measurement: a quadratic pattern takes hours on a megabyte (0.5 s on
    8,000 characters), a linear one a fraction of a second. The bound is 20x slack."""
    redactor = redactor_of()  # the providers' link shapes are declared
    started = time.perf_counter()
    redacted = in_a_request_scope("hostile", lambda: redaction.redact(text), redactor)
    assert time.perf_counter() - started < 5.0
    assert len(redacted) <= redaction.MAX_FIELD_CHARS + 40


async def test_a_hostile_url_and_headers_are_logged_in_bounded_time(
    client: Client,
    log_lines: LogLines,
) -> None:
    started = time.perf_counter()
    for _ in range(4):
        response = await client.get(
            "/" + "z" * 8000, headers={"X-Hostile": "eyJ-" * 2000, "Cookie": "c=" + "z" * 8000}
        )
        assert response.status == 404
    assert time.perf_counter() - started < 2.0  # 0.5 s of event loop per request before the fix
    [*_, line] = [c for c in log_lines.parsed() if c["msg"] == "request completed"]
    assert line["res"] == {"statusCode": 404}
    assert (
        line["req"]["url"]
        == "/" + "z" * (redaction.MAX_FIELD_CHARS - 1) + "...[5953 more characters]"
    )


def test_a_log_record_of_a_megabyte_is_written_in_bounded_time(
    build_app: Callable[..., web.Application],
) -> None:
    build_app()
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "x" * 1_000_000, None, None)
    record.fields = {"req": {"url": "/" + "z" * 1_000_000, "headers": ["eyJ-" * 250_000]}}
    started = time.perf_counter()
    line = json.loads(logs.PinoFormatter().format(record))
    assert time.perf_counter() - started < 10.0
    assert len(line["msg"]) < redaction.MAX_FIELD_CHARS + 40
    assert len(line["req"]["url"]) < redaction.MAX_FIELD_CHARS + 40


# -- 2. One participant must never become another's provider user ----------------------------


VICTIM = "doctor 1"
"""An id that is not kept as it is, so its provider user id is a digest."""


@pytest.fixture(params=["fake", "bandyer"])
async def provider_client(
    request: pytest.FixtureRequest, make_client: MakeClient, kaleyra_url: str
) -> Client:
    if request.param == "fake":
        return await make_client()
    return await make_client(**bandyer_env(kaleyra_url))


def user_map_conflict(external_id: str, provider: str) -> dict[str, object]:
    return error(
        409,
        f"Participant {external_id!r} cannot be given a {provider} user: the one derived for "
        "it already stands for another user id. An operator must correct the user map "
        "(docs/operations.md, Security).",
        code="user_map_conflict",
    )


async def test_an_id_shaped_like_a_digest_does_not_become_its_user(
    provider_client: Client, clock: FrozenClock
) -> None:
    client = provider_client
    doctor = person(VICTIM, ["doctor"], "Joe Smith")
    victims_room = await create(client, teleconsultation(2, doctor, PATIENT))
    impostor_id = stable_user_id(VICTIM)  # the victim's provider user id, as an external id
    impostor = person(impostor_id, ["patient"], "Eve")
    impostors_room = await create(client, teleconsultation(2, DOCTOR, impostor))
    clock.advance(hours=4)

    _, victims_view = await join(client, victims_room, VICTIM)
    _, impostors_view = await join(client, impostors_room, impostor_id)
    assert impostors_view["bandyerUserId"] != victims_view["bandyerUserId"]
    assert impostors_view["accessLinkURL"] != victims_view["accessLinkURL"]

    response = await client.post("/credentials", headers={"miauserid": impostor_id})
    assert response.status == 201
    assert (await response.json())["bandyerUserId"] != victims_view["bandyerUserId"]


async def test_a_mapping_planted_before_the_fix_is_not_shared(provider_client: Client) -> None:
    """Before the fix an impostor's id was kept as it was: its mapping is read, not
    recomputed, and the victim is refused rather than handed the impostor's user."""
    client = provider_client
    store = client.app[SERVICES].store
    provider = client.app[SERVICES].video.name
    planted = stable_user_id(VICTIM)
    await store.users.add_users(provider, {planted: planted}, "public")

    doctor = person(VICTIM, ["doctor"], "Joe Smith")
    response = await client.post("/teleconsultation", json=teleconsultation(2, doctor, PATIENT))

    assert response.status == 409
    assert await response.json() == user_map_conflict(VICTIM, provider)
    assert await store.users.find_user(provider, VICTIM) is None
    assert await store.users.find_user(provider, PATIENT["userExternalId"]) is None
    assert await store.outbox.job_backlog() == (0, None)
    assert (
        await store.users.find_user(provider, planted) == planted
    )  # existing mappings keep working


async def test_two_ids_sharing_a_user_before_the_fix_are_both_refused(
    provider_client: Client,
) -> None:
    """Both mappings were written by the old version: neither is used, whichever asks."""
    client = provider_client
    users = client.app[SERVICES].store.users
    provider = client.app[SERVICES].video.name
    shared = stable_user_id(VICTIM)
    await users.add_users(provider, {VICTIM: shared, shared: shared}, "public")

    for external_id in (VICTIM, shared):
        response = await client.post("/credentials", headers={"miauserid": external_id})
        assert response.status == 409, external_id


async def test_a_provider_that_gives_two_new_ids_one_user_is_refused(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one creation too: two participants never share a provider user (each would be
    handed the other's link), and nothing is mapped."""
    video = fake_video(client)

    async def the_same_user(external_id: str, level: object) -> str:
        return "shared-user"

    monkeypatch.setattr(video, "ensure_user", the_same_user)
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))

    assert response.status == 409
    assert await response.json() == user_map_conflict(PATIENT["userExternalId"], "fake")
    users = client.app[SERVICES].store.users
    assert await users.find_user("fake", DOCTOR["userExternalId"]) is None
    assert await users.find_user("fake", PATIENT["userExternalId"]) is None


# -- 3. A signing key removed from the JWKS stops verifying ------------------------------------


@pytest.fixture
async def jwks(aiohttp_server: Server, signing: SigningKeys) -> str:
    server = await aiohttp_server(signing.app())
    return str(server.make_url("/.well-known/jwks.json"))


@pytest.fixture
def signing() -> SigningKeys:
    keys_ = SigningKeys()
    keys_.add("k1")
    keys_.add("k2")
    return keys_


def token_env(jwks_url: str, **extra: str) -> dict[str, str]:
    return {"JWT_JWKS_URL": jwks_url, "JWT_AUDIENCE": AUDIENCE, "JWT_ISSUER": ISSUER, **extra}


async def test_a_removed_key_stops_verifying_within_the_ttl(
    make_client: MakeClient, jwks: str, signing: SigningKeys, clock: FrozenClock
) -> None:
    client = await make_client(**token_env(jwks, JWT_JWKS_TTL_MS="600000"))
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token("k2"))
    )
    signing.published.remove("k2")  # the issuer revokes k2
    path = f"/teleconsultation/{room_id}"

    clock.advance(minutes=9)
    assert (await client.get(path, headers=bearer(signing.token("k2")))).status == 200  # cached
    clock.advance(minutes=1)
    response = await client.get(path, headers=bearer(signing.token("k2")))
    assert response.status == 401
    assert await response.json() == error(
        401, "The bearer token was signed with an unknown key.", "Unauthorized user"
    )
    assert (await client.get(path, headers=bearer(signing.token("k1")))).status == 200


async def test_a_shorter_max_age_of_the_jwks_answer_wins(
    make_client: MakeClient, jwks: str, signing: SigningKeys, clock: FrozenClock
) -> None:
    signing.cache_control = "public, max-age=60"
    client = await make_client(**token_env(jwks))
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token("k2"))
    )
    signing.published.remove("k2")
    clock.advance(seconds=61)
    response = await client.get(f"/teleconsultation/{room_id}", headers=bearer(signing.token("k2")))
    assert response.status == 401


async def test_a_jwks_that_says_max_age_0_is_not_fetched_at_every_request(
    make_client: MakeClient, jwks: str, signing: SigningKeys, clock: FrozenClock
) -> None:
    signing.cache_control = "max-age=0"
    client = await make_client(**token_env(jwks))
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token())
    )
    for _ in range(20):
        await client.get(f"/teleconsultation/{room_id}", headers=bearer(signing.token()))
    assert signing.fetches == 1
    clock.advance(seconds=31)
    await client.get(f"/teleconsultation/{room_id}", headers=bearer(signing.token()))
    assert signing.fetches == 2


async def test_a_first_fetch_that_fails_is_not_repeated_at_every_request(
    make_client: MakeClient, jwks: str, signing: SigningKeys, clock: FrozenClock
) -> None:
    signing.down = True
    client = await make_client(**token_env(jwks))
    for _ in range(20):
        response = await client.get(
            "/teleconsultation/0123456789abcdef01234567", headers=bearer(signing.token())
        )
        assert response.status in (502, 503)
    assert signing.fetches <= 3  # one fetch (with its retries), then a pause
    signing.down = False
    clock.advance(seconds=31)
    response = await client.get(
        "/teleconsultation/0123456789abcdef01234567", headers=bearer(signing.token())
    )
    assert response.status == 404  # verified, then not found


async def test_keys_serve_one_more_interval_when_the_jwks_is_down(
    make_client: MakeClient, jwks: str, signing: SigningKeys, clock: FrozenClock
) -> None:
    client = await make_client(**token_env(jwks, JWT_JWKS_TTL_MS="60000"))
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token())
    )
    path = f"/teleconsultation/{room_id}"
    signing.down = True
    clock.advance(seconds=90)
    assert (await client.get(path, headers=bearer(signing.token()))).status == 200
    fetches = signing.fetches
    assert (await client.get(path, headers=bearer(signing.token()))).status == 200
    assert signing.fetches == fetches  # a failed fetch is not repeated at once
    clock.advance(seconds=40)
    response = await client.get(path, headers=bearer(signing.token()))
    assert response.status == 502
    assert await response.json() == error(
        502, "The token keys provider failed to fetch the token signing keys: HTTP 503: down"
    )


# -- 4. A teleconsultation belongs to its creator and its plus participants --------------------


async def test_a_patient_cannot_take_over_a_teleconsultation(
    make_client: MakeClient, jwks: str, signing: SigningKeys
) -> None:
    client = await make_client(**token_env(jwks))
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token())
    )
    takeover = {
        "participants": {
            "number": 2,
            "data": [person("patient-1", ["doctor"], "Eve"), person("x", ["patient"], "X")],
        }
    }
    patient = bearer(signing.token(sub="patient-1"))

    for method, path, body in [
        ("PATCH", f"/teleconsultation/{room_id}", takeover),
        ("POST", f"/teleconsultation/{room_id}/participants/data", NURSE),
        ("DELETE", f"/teleconsultation/{room_id}", None),
    ]:
        response = await client.request(method, path, json=body, headers=patient)
        assert response.status == 403, method
        assert await response.json() == error(
            403,
            "Only the teleconsultation's creator, its plus participants and members of "
            "ADMIN_GROUPS may change it.",
        )
    response = await client.get(f"/teleconsultation/{room_id}", headers=bearer(signing.token()))
    assert response.status == 200  # the doctor is still the doctor


async def test_the_creator_a_plus_participant_and_an_admin_may_change_it(
    make_client: MakeClient,
) -> None:
    client = await make_client(ADMIN_GROUPS="it-admins")
    body = teleconsultation(3, DOCTOR, person("doctor-2", ["doctor"], "Ann"))
    room_id = await create(client, body, headers={"miauserid": "secretary-1"})
    path = f"/teleconsultation/{room_id}"
    for headers in [
        {"miauserid": "secretary-1"},  # the creator
        {"miauserid": "doctor-2"},  # a plus participant
        {"miauserid": "someone", "miausergroups": "it-admins"},
    ]:
        response = await client.patch(
            path, json={"start_date": "2030-02-22T15:00:00Z"}, headers=headers
        )
        assert response.status == 204, headers
    response = await client.patch(
        path, json={"start_date": "2030-02-22T15:00:00Z"}, headers={"miauserid": "someone"}
    )
    assert response.status == 403


async def test_a_manager_cannot_rewrite_another_managers_teleconsultation(
    make_client: MakeClient,
) -> None:
    client = await make_client(MANAGER_GROUPS="secretaries")
    room_id = await create(
        client,
        teleconsultation(2, DOCTOR, PATIENT),
        headers={"miauserid": "secretary-a", "miausergroups": "secretaries"},
    )
    response = await client.delete(
        f"/teleconsultation/{room_id}",
        headers={"miauserid": "secretary-b", "miausergroups": "secretaries"},
    )
    assert response.status == 403


async def test_anonymous_writes_can_be_turned_off(make_client: MakeClient) -> None:
    client = await make_client(ALLOW_ANONYMOUS_WRITES="false")
    refused = error(
        403,
        "This service accepts changes only from callers who say who they are "
        "(ALLOW_ANONYMOUS_WRITES=false); see userIdPathInRequest.",
    )
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert (response.status, await response.json()) == (403, refused)

    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers={"miauserid": "doctor-1"}
    )
    response = await client.delete(f"/teleconsultation/{room_id}")
    assert (response.status, await response.json()) == (403, refused)


async def test_anonymous_callers_cannot_change_the_company_settings_either(
    make_client: MakeClient,
) -> None:
    client = await make_client(ALLOW_ANONYMOUS_WRITES="false", ADMIN_GROUPS="ops")
    operators = {"miausergroups": "ops"}  # groups, and no id
    form = aiohttp.FormData()
    form.add_field("virtual_background", b"\xff\xd8", filename="b.jpg", content_type="image/jpeg")
    for response in [
        await client.post("/settings/background-image", data=form, headers=operators),
        await client.patch("/settings/update", json={"background_alias": "x"}, headers=operators),
    ]:
        assert response.status == 403
        assert (await response.json())["message"] == (
            "Only identified members of ADMIN_GROUPS may call the operator routes (failed "
            "webhooks, the company's settings)."
        )


async def test_anonymous_writes_keep_the_original_behaviour_when_allowed(
    make_client: MakeClient,
) -> None:
    client = await make_client(ALLOW_ANONYMOUS_WRITES="true")  # off by default: test_access.py
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.delete(f"/teleconsultation/{room_id}")
    assert response.status == 204


# -- 5. Idempotency keys cannot grow without bound ---------------------------------------------


async def test_a_refused_keyed_request_stores_nothing(client: Client, clock: FrozenClock) -> None:
    for index in range(20):
        response = await client.post(
            "/teleconsultation/0123456789abcdef01234567/participants/data",
            json=NURSE,
            headers={"Idempotency-Key": f"k-{index}"},
        )
        assert response.status == 404
    assert await client.app[SERVICES].store.idempotency.count_keys("public", clock.now) == 0


async def test_expired_keys_are_purged_in_batches(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await make_client(IDEMPOTENCY_KEY_TTL_MS="1000")
    store = client.app[SERVICES].store
    for index in range(PURGE_BATCH + 5):
        await store.idempotency.claim_key(
            KeyClaim(f"scope-{index}", "c", "fp", "t", clock.now, clock.now)
        )
    await store.idempotency.claim_key(
        KeyClaim("fresh", "c", "fp", "t", clock.now, clock.now.replace(year=2031))
    )

    assert await client.app[SERVICES].reconciler.purge_expired_keys() == PURGE_BATCH + 5
    assert await store.idempotency.count_keys("c", clock.now) == 1


async def test_one_caller_holds_a_bounded_number_of_keys(make_client: MakeClient) -> None:
    client = await make_client(IDEMPOTENCY_MAX_KEYS_PER_CALLER="2")
    headers = {"miauserid": "doctor-1"}
    for index in range(2):
        response = await client.post(
            "/teleconsultation",
            json=teleconsultation(2, DOCTOR, PATIENT),
            headers={**headers, "Idempotency-Key": f"k-{index}"},
        )
        assert response.status == 201
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={**headers, "Idempotency-Key": "k-2"},
    )
    assert response.status == 429
    assert await response.json() == {
        "statusCode": 429,
        "error": "Too Many Requests",
        "message": "This caller holds 2 unexpired Idempotency-Keys "
        "(IDEMPOTENCY_MAX_KEYS_PER_CALLER); a retry with a key already used is still "
        "answered, a new key only once older ones expire.",
        "code": "too_many_idempotency_keys",
    }
    retry = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers={**headers, "Idempotency-Key": "k-1"},
    )
    assert (retry.status, retry.headers["Idempotent-Replayed"]) == (201, "true")
    response = await client.post(
        "/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT), headers=headers
    )
    assert response.status == 201  # without a key, the request runs


# -- 6. An integer past Python's digit limit is a client error --------------------------------


async def test_a_5000_digit_integer_in_the_body_is_a_400(client: Client) -> None:
    body = '{"participants": {"number": ' + "9" * 5000 + ', "data": []}, "start_date": "x"}'
    response = await client.post("/teleconsultation", data=body, headers=JSON)
    assert response.status == 400
    assert await response.json() == error(
        400,
        "The body is not valid JSON: Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits.",
        code="malformed_body",
    )


async def test_a_5000_digit_integer_in_a_json_header_is_a_401(make_client: MakeClient) -> None:
    config = {
        "privileges": {"basic": {"groups": ["patient"]}, "plus": {"groups": ["doctor"]}},
        "userIdPathInRequest": [
            {"from": "headers", "extract": "object"},
            {"from": "miauserproperties", "extract": "object"},
            {"from": "customUserId", "extract": "json"},
        ],
    }
    client = await make_client(config)
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    response = await client.get(
        f"/teleconsultation/{room_id}",
        headers={"miauserproperties": '{"customUserId": ' + "9" * 5000 + "}"},
    )
    assert response.status == 401
    assert (await response.json())["error"] == "Unauthorized user"


# -- 7. A client that leaves is not a server error ---------------------------------------------


async def test_a_client_closing_mid_body_is_counted_apart_and_logged_at_debug(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, LOG_LEVEL="debug") as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /teleconsultation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"partic'
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.3)
        metrics = await raw_get(server.port, "/-/metrics")
    assert (
        'teleconsult_http_requests_total{method="POST",route="/teleconsultation",'
        'status="client_closed"} 1.0' in metrics
    )
    assert 'status="500"' not in metrics
    lines = [json.loads(line) for line in server.stdout.splitlines()]
    assert [line["level"] for line in lines if line.get("res", {}).get("statusCode") == 499] == [20]
    assert [line for line in lines if line["level"] >= 50] == []


# -- 8. An invalid body gets a short answer after bounded work ---------------------------------


async def test_many_invalid_entries_get_twenty_problems_and_a_count(client: Client) -> None:
    entries = [{"userExternalId": ""} for _ in range(100)]
    body = {"participants": {"number": 2, "data": entries}, "start_date": "2030-02-22T15:30:00Z"}
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.count("participants.data[") == 20
    assert message.endswith("; and 80 more problems")


async def test_a_list_longer_than_any_provider_takes_is_refused_before_its_items(
    client: Client,
) -> None:
    body = {
        "participants": {"number": 2, "data": [{"x": 1}] * 1001},
        "start_date": "2030-02-22T15:30:00Z",
    }
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 400
    assert await response.json() == error(
        400, "participants.data: Longer than maximum length 1000."
    )


async def test_a_body_over_64_kib_is_a_413(client: Client) -> None:
    body = json.dumps({"participants": ["x" * 200] * 400, "start_date": "2030-02-22T15:30:00Z"})
    response = await client.post("/teleconsultation", data=body, headers=JSON)
    assert response.status == 413
    assert (await response.json())["statusCode"] == 413


async def test_a_huge_list_of_groups_is_refused_before_its_items(client: Client) -> None:
    doctor = {"userExternalId": "a", "groups": [1] * 30_000, "fullName": "x"}
    body = {"participants": {"number": 2, "data": [doctor]}, "start_date": START}
    compact = json.dumps(body, separators=(",", ":"))  # 60 KB: under the 64 KiB limit
    response = await client.post("/teleconsultation", data=compact, headers=JSON)
    assert response.status == 400
    assert await response.json() == error(
        400, "participants.data[0].groups: Length must be between 1 and 50."
    )


# -- 9. Redaction gaps: Basic credentials, and secrets a provider echoes ----------------------


async def test_basic_credentials_in_a_malformed_request_are_not_logged(
    client: Client,
    log_lines: LogLines,
) -> None:
    assert client.server.port is not None
    status_line = await first_line(
        client.server.port,
        b"GET /-/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpodW50ZXIy\x01xyz\r\n\r\n",
    )
    assert b" 400 " in status_line
    assert "dXNlcjpodW50ZXIy" not in log_lines.text
    [line] = [line for line in log_lines.parsed() if line["logger"] == "aiohttp.server"]
    assert line["level"] == 40  # a warning in one line, not an error with a traceback
    assert line["msg"].startswith("malformed HTTP request: ")
    assert "err" not in line


async def test_a_provider_echoing_the_api_key_leaks_it_nowhere(
    make_client: MakeClient,
    kaleyra_url: str,
    kaleyra: FakeKaleyra,
    log_lines: LogLines,
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url))
    kaleyra.fail("create_room", Fault(status=400, message=f"bad request with apikey {API_KEY}"))
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert response.status == 502
    assert await response.json() == error(
        502,
        "The bandyer provider failed to create a room: HTTP 400: bad request with apikey "
        "[redacted]",
    )
    assert API_KEY not in log_lines.text


async def test_a_key_echoed_at_the_end_of_a_long_message_is_not_half_shown(
    make_client: MakeClient, kaleyra_url: str, kaleyra: FakeKaleyra, log_lines: LogLines
) -> None:
    client = await make_client(**bandyer_env(kaleyra_url))
    kaleyra.fail("create_room", Fault(status=400, message="x" * 192 + API_KEY))
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    message = (await response.json())["message"]
    assert API_KEY[:4] not in message
    assert API_KEY[:4] not in log_lines.text


def test_every_link_of_a_run_and_whole_cookie_and_key_headers_are_redacted() -> None:
    cases = {
        "http://h/fake-video/join/AAAA,http://h/fake-video/join/BBBB": "[redacted],[redacted]",
        "/fake-video/join/{code},http://h/fake-video/join/SECRET": (
            "/fake-video/join/{code},[redacted]"
        ),
        "Cookie: theme=dark; sessionid=S3CR3TSESSION": "Cookie: [redacted]",
        "X-Api-Key: K3Y1 K3Y2": "X-Api-Key: [redacted]",
    }
    redacted = in_a_request_scope(
        "r", lambda: {text: redaction.redact(text) for text in cases}, redactor_of()
    )
    assert redacted == cases


def test_redaction_folds_case_beyond_ascii_as_its_patterns_do() -> None:
    """The quick check before the scans finds what the scans act on whatever the case,
    U+017F (a long s) and U+0130 (a dotted capital I) included, as their case-insensitive
    patterns do; text with none of it is left alone."""
    cases = {
        "\u017fecret=hunter2": "\u017fecret=[redacted]",
        "author\u0130zation: Basic abc": "author\u0130zation: [redacted]",
        "SeCrEt=hunter2": "SeCrEt=[redacted]",
        "/teleconsultation/6930bd9ef4c2f2a1b2c3d4e5": "/teleconsultation/6930bd9ef4c2f2a1b2c3d4e5",
        "Dr. Müller est arrivé": "Dr. Müller est arrivé",
    }
    assert {text: redaction.redact(text) for text in cases} == cases


# -- 10. HTTP hygiene ---------------------------------------------------------------------------


async def test_answers_with_links_or_tokens_are_not_stored_by_caches(
    client: Client, clock: FrozenClock
) -> None:
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    clock.advance(hours=4)
    response = await client.get(f"/teleconsultation/{room_id}", headers={"miauserid": "doctor-1"})
    assert response.headers["Cache-Control"] == "no-store"
    response = await client.post("/credentials", headers={"miauserid": "doctor-1"})
    assert response.headers["Cache-Control"] == "no-store"


async def test_every_answer_says_nosniff_and_names_no_versions(client: Client) -> None:
    for response in [
        await client.get("/-/healthz"),
        await client.get("/no-such-route"),
        await client.post("/teleconsultation", data="{", headers=JSON),
    ]:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Server"] == "teleconsult"
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n")
    await writer.drain()
    answer = (await reader.read()).decode(errors="replace")
    writer.close()
    await writer.wait_closed()
    assert "Server: teleconsult\r\n" in answer
    assert "X-Content-Type-Options: nosniff\r\n" in answer
    assert "aiohttp" not in answer
    assert "Python" not in answer


@pytest.mark.parametrize(
    ("request_head", "secret"),
    [
        pytest.param(
            b"GET /-/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n",
            b"T" * 20_000,
            id="header-value",
        ),
        pytest.param(b"GET /-/healthz?token=%s HTTP/1.1\r\nHost: x\r\n", b"T" * 20_000, id="url"),
        pytest.param(b"GET /-/healthz HTTP/1.1\r\nHost: x\r\nX-%s: y\r\n", b"N" * 9_000, id="name"),
    ],
)
async def test_an_oversized_header_is_a_431_that_echoes_nothing(
    client: Client, log_lines: LogLines, request_head: bytes, secret: bytes
) -> None:
    """aiohttp's own answer was a plain-text 400 quoting the line (a token, say)."""
    assert client.server.port is not None
    answer = await raw_answer(
        client.server.port, request_head % secret + b"Connection: close\r\n\r\n"
    )

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 431 Request Header Fields Too Large"), head
    assert b"Content-Type: application/json; charset=utf-8\r\n" in head
    assert b"Server: teleconsult\r\n" in head
    assert json.loads(body) == error(
        431,
        "The request line or a header is longer than 8190 bytes (the limit); send it shorter.",
        "Request Header Fields Too Large",
        code="header_too_large",
    )
    assert secret[:20] not in answer
    [warning] = [line for line in log_lines.parsed() if line["level"] >= 40]
    assert warning["msg"] == "malformed HTTP request: a line longer than 8190 bytes"
    assert secret[:20].decode() not in log_lines.text


@pytest.mark.parametrize(
    ("header", "values"),
    [
        ("miauserid", ("doctor-1", "patient-1")),
        ("miausergroups", ("secretaries", "nobody")),
        ("Authorization", ("Bearer a", "Bearer b")),
    ],
)
async def test_a_repeated_identity_header_is_a_400(
    make_client: MakeClient, header: str, values: tuple[str, str]
) -> None:
    """Without the check the first one won: a gateway that appends its own header after the
    client's would have been overruled by the client."""
    client = await make_client(MANAGER_GROUPS="secretaries")
    base = {"miauserid": "doctor-1", "miausergroups": "secretaries"}
    base.pop(header, None)
    response = await client.post(
        "/teleconsultation",
        json=teleconsultation(2, DOCTOR, PATIENT),
        headers=[*base.items(), *((header, value) for value in values)],
    )
    assert response.status == 400
    assert await response.json() == error(
        400,
        f"The request has more than one {header.lower()} header; send one.",
        path=header.lower(),
    )


INVISIBLE = "A user id must not hold control, zero-width or direction characters"


@pytest.mark.parametrize(
    ("user_id", "problem"),
    [
        (
            "doctor\x00",
            "A user id must not hold control, zero-width or direction characters (found U+0000).",
        ),
        (
            "doc\u200btor",
            "A user id must not hold control, zero-width or direction characters (found U+200B).",
        ),
        (
            "\u202edoctor",
            "A user id must not hold control, zero-width or direction characters (found U+202E).",
        ),
        ("doc\ufe0ftor", INVISIBLE + " (found U+FE0F)."),
        ("\u3164", INVISIBLE + " (found U+3164)."),
        ("doc\u2800", INVISIBLE + " (found U+2800)."),
        ("doc\u00a0tor", INVISIBLE + " (found U+00A0)."),
        (" doctor", "A user id must not start or end with whitespace."),
        ("doctor\t", "A user id must not start or end with whitespace."),
    ],
)
async def test_an_id_that_could_never_join_is_a_400(
    client: Client, user_id: str, problem: str
) -> None:
    body = teleconsultation(2, person(user_id, ["doctor"], "Joe"))
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 400
    assert await response.json() == error(400, f"participants.data[0].userExternalId: {problem}")

    response = await client.post(
        "/teleconsultation",
        json={**body, "participants": ["ok", user_id]},
    )
    assert await response.json() == error(400, f"participants[1]: {problem}")


async def test_a_slow_body_is_a_408(make_client: MakeClient) -> None:
    client = await make_client(HTTP_READ_TIMEOUT_MS="1000")
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"POST /teleconsultation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"partic'
    )
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).decode()
    length = int(head.lower().split("content-length: ")[1].split("\r\n")[0])
    body = (await reader.readexactly(length)).decode()
    writer.close()
    await writer.wait_closed()
    assert head.startswith("HTTP/1.1 408 ")
    assert "Connection: close" in head
    assert json.loads(body) == error(
        408, "The body did not arrive within 1 s (HTTP_READ_TIMEOUT_MS).", "Request Timeout"
    )


async def test_slow_headers_are_cut_off(tmp_path: Path) -> None:
    async with served(tmp_path, HTTP_READ_TIMEOUT_MS="1000") as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /-/healthz HTTP/1.1\r\nHost: x\r\n")  # and never the end
        await writer.drain()
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed, no answer
        assert time.monotonic() - started < 5
        writer.close()


# -- 11. The embedded store is durable on power loss by default --------------------------------


@pytest.mark.parametrize(("setting", "pragma"), [(None, 2), ("normal", 1), ("extra", 3)])
async def test_sqlite_syncs_every_commit_by_default(
    store_url: str, setting: str | None, pragma: int
) -> None:
    environ = {"STORE_URL": store_url, **({"SQLITE_SYNCHRONOUS": setting} if setting else {})}
    store = await open_store(Settings.from_environ(environ))
    assert isinstance(store.health, SQLiteConnection)
    try:
        async with store.health.guard() as db:
            cursor = await db.execute("PRAGMA synchronous")
            assert await cursor.fetchone() == (pragma,)  # 2 is FULL, 1 NORMAL, 3 EXTRA
    finally:
        await store.health.close()


async def test_acknowledged_writes_survive_a_killed_process(tmp_path: Path) -> None:
    """kill -9 in the middle of a burst of creations: every 201 is in the file afterwards."""
    acknowledged: list[str] = []
    enough = asyncio.Event()
    async with served(tmp_path) as server:

        async def create_one() -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            body = json.dumps(teleconsultation(2, DOCTOR, PATIENT)).encode()
            writer.write(
                b"POST /teleconsultation HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"miauserid: doctor-1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
            answer = await reader.read()
            writer.close()
            if answer.startswith(b"HTTP/1.1 201 "):
                acknowledged.append(json.loads(answer.split(b"\r\n\r\n", 1)[1])["roomId"])
                if len(acknowledged) >= 10:
                    enough.set()

        burst = [asyncio.create_task(create_one()) for _ in range(60)]
        await asyncio.wait_for(enough.wait(), timeout=30)
        server.process.kill()
        await asyncio.gather(*burst, return_exceptions=True)
    store = await open_store(
        Settings.from_environ({"STORE_URL": f"sqlite:///{tmp_path / 'served.db'}"})
    )
    try:
        missing = [room_id for room_id in acknowledged if await store.records.get(room_id) is None]
    finally:
        await store.health.close()
    assert len(acknowledged) >= 10
    assert missing == []


# -- 12. An id that a URL would resolve away is no user id -------------------------------------

DOT_ID = "A user id must not be '.' or '..' (nor spell one with %2E or a look-alike)."
DOT_IDS = [
    pytest.param(".", id="dot"),
    pytest.param("..", id="dot-dot"),
    pytest.param("%2e", id="encoded-dot"),
    pytest.param("%2E%2e", id="encoded-dot-dot"),
    pytest.param("%252e%252E", id="twice-encoded-dot-dot"),
    pytest.param("\u2025", id="two-dot-leader"),
    pytest.param("\uff0e\uff0e", id="fullwidth-dots"),
]


@pytest.mark.parametrize("user_id", DOT_IDS)
async def test_a_participant_a_url_would_resolve_away_is_a_400(
    client: Client, user_id: str
) -> None:
    """`/users/..` is `/`: a participant `..` was looked up as the identity provider's root
    document (and became a doctor)."""
    body = teleconsultation(2, person(user_id, ["doctor"], "Joe"))
    response = await client.post("/teleconsultation", json=body)
    assert response.status == 400
    assert await response.json() == error(400, f"participants.data[0].userExternalId: {DOT_ID}")

    response = await client.post(
        "/teleconsultation", json={**body, "participants": ["ok", user_id]}
    )
    assert response.status == 400
    assert await response.json() == error(400, f"participants[1]: {DOT_ID}")

    room_id = await create(client, teleconsultation(2, DOCTOR))
    response = await client.post(
        f"/teleconsultation/{room_id}/participants/data",
        json=person(user_id, ["patient"], "Jane"),
        headers={"miauserid": "doctor-1"},
    )
    assert response.status == 400
    assert await response.json() == error(400, f"userExternalId: {DOT_ID}")


@pytest.mark.parametrize("user_id", ["...", ".a", "a.", "a..b", "auth0|a/b", "a%2Fb", "a@b.c"])
async def test_ids_with_dots_or_slashes_are_still_ids(client: Client, user_id: str) -> None:
    room_id = await create(client, teleconsultation(2, person(user_id, ["doctor"], "Joe")))
    assert (await join(client, room_id, user_id))[0] == 200


@pytest.mark.parametrize("user_id", ["..", "%2E"])
async def test_a_caller_a_url_would_resolve_away_is_a_400(
    make_client: MakeClient, jwks: str, signing: SigningKeys, user_id: str
) -> None:
    client = await make_client()
    response = await client.post("/credentials", headers={"miauserid": user_id})
    assert response.status == 400
    assert await response.json() == error(400, f"miauserid: {DOT_ID}", path="miauserid")

    client = await make_client(**token_env(jwks))
    response = await client.post("/credentials", headers=bearer(signing.token(sub=user_id)))
    assert response.status == 400
    assert await response.json() == error(400, f"sub: {DOT_ID}", path="sub")
