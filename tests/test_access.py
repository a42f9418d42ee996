"""Who may call what, by default and once configured (issue 25: access).

Each section names the defect it guards against; each test failed before its fix. They go
through the HTTP API as the attacker of the issue did.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from teleconsult.app import create_app
from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.core.domain import RecordState
from teleconsult.services import SERVICES
from teleconsult.store import Store
from teleconsult.store.documents import is_object_id, new_teleconsultation_id
from tests.fake_jwks import AUDIENCE, ISSUER, SigningKeys
from tests.helpers import (
    DOCTOR,
    PATIENT,
    AppClient,
    Client,
    FrozenClock,
    MakeClient,
    bearer,
    create,
    error,
    person,
    teleconsultation,
)

ROOT = Path(__file__).resolve().parent.parent
Server = Callable[[web.Application], Awaitable[TestServer]]
SECRET = "whsec_" + base64.b64encode(b"the receiver of the access tests").decode()
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 2048
OPERATOR = {"miauserid": "operator-1", "miausergroups": "ops"}
PATIENT_CALLER = {"miauserid": "random-patient", "miausergroups": "patient"}
OPERATORS_UNSET = (
    "The operator routes (failed webhooks, the company's settings) are closed while "
    "ADMIN_GROUPS is unset; set it to your operators' groups to open them to their members."
)
NOT_AN_OPERATOR = (
    "Only identified members of ADMIN_GROUPS may call the operator routes (failed webhooks, "
    "the company's settings)."
)


# -- 1. The operator routes are for ADMIN_GROUPS only, and closed while it is unset -------------


@pytest.fixture
async def gone_url(aiohttp_server: Server) -> str:
    """A webhook receiver that answers 410 Gone: each delivery fails at once."""

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    app = web.Application()
    app.router.add_post("/hooks", gone)
    return str((await aiohttp_server(app)).make_url("/hooks"))


async def with_a_failed_delivery(client: Client) -> str:
    """A teleconsultation whose first event failed for good; the delivery's id."""
    room_id = await create(
        client,
        teleconsultation(2, DOCTOR, PATIENT),
        headers={"miauserid": "doctor-1", "miausergroups": "managers"},
    )
    while await client.app[SERVICES].deliverer.run_once():
        pass
    return f"default.evt_{room_id}_1_0"


def background() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(
        "virtual_background", io.BytesIO(JPEG), filename="bg.jpg", content_type="image/jpeg"
    )
    return form


async def operator_calls(client: Client, delivery_id: str, headers: dict[str, str]) -> list[Any]:
    """Each operator route, called by `headers`: its status and body."""
    answers = []
    for response in [
        await client.get("/webhooks/failed", headers=headers),
        await client.post(f"/webhooks/failed/{delivery_id}/retry", headers=headers),
        await client.post("/settings/background-image", data=background(), headers=headers),
        await client.patch("/settings/update", json={"background_alias": "bg-1"}, headers=headers),
    ]:
        answers.append((response.status, await response.json()))
    return answers


@pytest.mark.parametrize(
    "headers",
    [
        PATIENT_CALLER,
        {},  # anonymous
        {"miauserid": "manager-1", "miausergroups": "managers"},  # MANAGER_GROUPS opens nothing
    ],
    ids=["patient", "anonymous", "manager"],
)
async def test_the_operator_routes_are_closed_while_admin_groups_is_unset(
    make_client: MakeClient, gone_url: str, headers: dict[str, str]
) -> None:
    client = await make_client(
        WEBHOOK_URL=gone_url, WEBHOOK_SECRET=SECRET, MANAGER_GROUPS="managers"
    )
    delivery_id = await with_a_failed_delivery(client)
    closed = (403, error(403, OPERATORS_UNSET))
    assert await operator_calls(client, delivery_id, headers) == [closed] * 4


async def test_only_identified_members_of_admin_groups_call_the_operator_routes(
    make_client: MakeClient, gone_url: str
) -> None:
    client = await make_client(WEBHOOK_URL=gone_url, WEBHOOK_SECRET=SECRET, ADMIN_GROUPS="ops")
    delivery_id = await with_a_failed_delivery(client)
    refused = (403, error(403, NOT_AN_OPERATOR))
    for headers in (PATIENT_CALLER, {"miausergroups": "ops"}, {"miauserid": "operator-1"}):
        assert await operator_calls(client, delivery_id, headers) == [refused] * 4

    response = await client.get("/webhooks/failed", headers=OPERATOR)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert delivery_id in [failed["id"] for failed in (await response.json())["failed"]]
    response = await client.post(f"/webhooks/failed/{delivery_id}/retry", headers=OPERATOR)
    assert response.status == 202
    response = await client.post("/settings/background-image", data=background(), headers=OPERATOR)
    assert response.status == 200
    alias = (await response.json())["virtual_background"]["background_alias"]
    response = await client.patch(
        "/settings/update", json={"background_alias": alias}, headers=OPERATOR
    )
    assert response.status == 200
    assert (await response.json())["company"]["default_background"] == alias


async def test_a_verified_patient_cannot_read_others_failed_deliveries(
    make_client: MakeClient, gone_url: str, aiohttp_server: Server
) -> None:
    signing = SigningKeys()
    signing.add("k1")
    jwks = str((await aiohttp_server(signing.app())).make_url("/.well-known/jwks.json"))
    client = await make_client(
        WEBHOOK_URL=gone_url,
        WEBHOOK_SECRET=SECRET,
        ADMIN_GROUPS="ops",
        JWT_JWKS_URL=jwks,
        JWT_AUDIENCE=AUDIENCE,
        JWT_ISSUER=ISSUER,
    )
    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers=bearer(signing.token())
    )
    while await client.app[SERVICES].deliverer.run_once():
        pass

    patient = bearer(signing.token(sub="random-patient", groups=["patient"]))
    response = await client.get("/webhooks/failed", headers=patient)
    assert (response.status, await response.json()) == (403, error(403, NOT_AN_OPERATOR))
    operator = bearer(signing.token(sub="operator-1", groups=["ops"]))
    response = await client.get("/webhooks/failed", headers=operator)
    assert response.status == 200
    failed = (await response.json())["failed"]
    assert ("room.created", room_id) in [(f["type"], f["teleconsultationId"]) for f in failed]


# -- 2. Secure by default: anonymous callers change nothing unless allowed ----------------------

ANONYMOUS_REFUSED = error(
    403,
    "This service accepts changes only from callers who say who they are "
    "(ALLOW_ANONYMOUS_WRITES=false); see userIdPathInRequest.",
)


def test_anonymous_writes_are_off_by_default() -> None:
    assert Settings.from_environ({}).access.allow_anonymous_writes is False


async def test_an_app_built_without_the_setting_refuses_anonymous_writes(
    app_client: AppClient,
    store_url: str,
    clock: FrozenClock,
    store_factory: Callable[[Settings], Awaitable[Store]] | None,
) -> None:
    """The attack: an anonymous PATCH gave another doctor's teleconsultation to `attacker`,
    and an anonymous DELETE cancelled it."""
    environ = {"STORE_URL": store_url, "VIDEO_PROVIDER": "fake", "RECONCILE_INTERVAL_MS": "0"}
    settings = Settings.from_environ(environ)
    app = create_app(
        settings,
        load_config(None),
        environ=environ,
        extra_plugins=(),
        clock=clock,
        **({"store_factory": store_factory} if store_factory else {}),
    )
    client = await app_client(app)
    response = await client.post("/teleconsultation", json=teleconsultation(2, DOCTOR, PATIENT))
    assert (response.status, await response.json()) == (403, ANONYMOUS_REFUSED)

    room_id = await create(
        client, teleconsultation(2, DOCTOR, PATIENT), headers={"miauserid": "doctor-1"}
    )
    attacker = person("attacker", ["doctor"], "Attacker")
    taken = {"participants": {"number": 2, "data": [attacker, PATIENT]}}
    response = await client.patch(f"/teleconsultation/{room_id}", json=taken)
    assert (response.status, await response.json()) == (403, ANONYMOUS_REFUSED)
    response = await client.post(f"/teleconsultation/{room_id}/participants/data", json=attacker)
    assert (response.status, await response.json()) == (403, ANONYMOUS_REFUSED)
    response = await client.delete(f"/teleconsultation/{room_id}")
    assert (response.status, await response.json()) == (403, ANONYMOUS_REFUSED)

    record = await client.app[SERVICES].store.records.get(room_id)
    assert record is not None
    assert [p.external_id for p in record.participants] == ["doctor-1", "patient-1"]
    assert record.state is RecordState.PUBLIC


def test_no_way_of_running_it_turns_anonymous_writes_on() -> None:
    """`make run`, the container, compose and the Kubernetes manifests: each leaves the
    setting at its default or says false."""
    files = [
        ROOT / "Makefile",
        *sorted(path for path in (ROOT / "deploy").rglob("*") if path.is_file()),
    ]
    said = {
        str(path.relative_to(ROOT)): value
        for path in files
        for value in re.findall(r"ALLOW_ANONYMOUS_WRITES\W{1,3}(\w+)", path.read_text())
    }
    assert said == {"deploy/kubernetes/settings.env": "false"}


# -- 2b. Ids are unguessable: a neighbour's id tells nothing of a victim's ----------------------


def test_new_ids_are_24_hex_characters_with_no_time_or_counter() -> None:
    ids = [new_teleconsultation_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    assert all(is_object_id(i) for i in ids)  # the shape every id had: old ones still pass
    assert len(set(ids)) == 1000
    assert ids != sorted(ids)  # an ObjectId made later sorts later
    assert len({i[:8] for i in ids}) > 900  # an ObjectId's first 4 bytes are the second
    assert len({i[8:18] for i in ids}) > 900  # its next 5 are the same in one process


async def test_consecutive_creations_share_no_part_of_their_ids(client: Client) -> None:
    """The attack: ids made around a victim's, by time and counter, narrowed it to a few
    probes (401 for an id that exists, 404 for one that does not)."""
    ids = [
        await create(client, teleconsultation(2, DOCTOR, PATIENT), {"miauserid": "doctor-1"})
        for _ in range(20)
    ]
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    assert len({i[:18] for i in ids}) == 20
    assert len({i[-6:] for i in ids}) == 20


# -- 7. Idempotency keys are each caller's own ---------------------------------------------------


async def test_one_callers_idempotency_key_is_not_anothers(make_client: MakeClient) -> None:
    """The attack: after one doctor used a key, another doctor's creation with it was a 422
    for a day, and a prober learnt whether anyone had used it."""
    client = await make_client(IDEMPOTENCY_MAX_KEYS_PER_CALLER="1")
    key = {"Idempotency-Key": "appointment-2030-42"}
    body = teleconsultation(2, DOCTOR, PATIENT)
    first = await client.post(
        "/teleconsultation", json=body, headers={"miauserid": "doctor-1", **key}
    )
    assert first.status == 201

    for caller, sent in (("doctor-2", body), ("prober", teleconsultation(2, DOCTOR))):
        response = await client.post(
            "/teleconsultation", json=sent, headers={"miauserid": caller, **key}
        )
        assert response.status == 201, await response.text()
        assert "Idempotent-Replayed" not in response.headers
        assert (await response.json())["roomId"] != (await first.json())["roomId"]

    again = await client.post(
        "/teleconsultation", json=body, headers={"miauserid": "doctor-2", **key}
    )
    assert (again.status, again.headers["Idempotent-Replayed"]) == (201, "true")
    other_key = {"Idempotency-Key": "appointment-2030-43"}  # doctor-2's allowance is 1 key
    response = await client.post(
        "/teleconsultation", json=body, headers={"miauserid": "doctor-2", **other_key}
    )
    assert response.status == 429
    assert (await response.json())["code"] == "too_many_idempotency_keys"
