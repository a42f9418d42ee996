"""A client generated from the served document drives the README's tour, as an integrator's would.

openapi-python-client (pinned in the dev extra) generates a Python package from
`/documentation/json` of `teleconsult serve` (the default configuration: webrtc, static
identity, the caller-id header); the package is imported and its async functions take
the tour's steps, with the tour's own bodies read from the README: the document alone is
enough to call the service, and what it says comes back.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from teleconsult.plugin import stable_user_id
from tests.helpers import served
from tests.test_serve import readme_block

PACKAGE = "teleconsult_tour_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
CONFIG = f"package_name_override: {PACKAGE}\npost_hooks: []\n"  # no formatter run: faster
DOCTOR_ID, PATIENT_ID = stable_user_id("doctor-1"), stable_user_id("patient-1")
CALL = [
    {"bandyerUserId": DOCTOR_ID, "fullName": "Joe Smith"},
    {"bandyerUserId": PATIENT_ID, "fullName": "Jane Doe"},
]


@pytest.fixture
def importable(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for the generated package, which is forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[name]


async def generate(document: dict[str, Any], folder: Path) -> None:
    (folder / "openapi.json").write_text(json.dumps(document))
    (folder / "generator.yaml").write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        str(GENERATOR), "generate", "--path", str(folder / "openapi.json"),
        "--output-path", str(folder / PACKAGE), "--meta", "none",
        "--config", str(folder / "generator.yaml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode()
    assert "Warning" not in output.decode(), output.decode()  # every part understood


def operation(name: str) -> Any:
    """A generated operation module, by its operationId's snake_case name."""
    return importlib.import_module(f"{PACKAGE}.api.teleconsultations.{name}")


def tour_bodies() -> list[dict[str, Any]]:
    """The JSON bodies the README's tour sends, in order (the one built by `date` aside)."""
    block = readme_block("A tour of the API")
    return [json.loads(body) for body in re.findall(r"-d '(\{.*?\})'", block, re.DOTALL)]


async def test_a_generated_client_drives_the_readme_tour(importable: Path) -> None:
    async with served(importable) as server:
        base_url = f"http://127.0.0.1:{server.port}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{base_url}/documentation/json") as answer,
        ):
            await generate(await answer.json(), importable)
        client = importlib.import_module(PACKAGE)

        def as_(user: str) -> Any:  # what the apiKey scheme becomes: the caller-id header
            return client.AuthenticatedClient(
                base_url=base_url, token=user, prefix="", auth_header_name="miauserid"
            )

        async with as_("doctor-1") as doctor, as_("patient-1") as patient_caller:
            await take_the_tour(base_url, doctor, patient_caller)


async def take_the_tour(base_url: str, doctor: Any, patient_caller: Any) -> None:
    """The README's steps, through the generated functions and models."""
    create_body, patient, reschedule, locked_change = tour_bodies()
    models = importlib.import_module(f"{PACKAGE}.models")
    create = operation("create_teleconsultation")
    get = operation("get_teleconsultation")
    add = operation("add_participant")
    update = operation("update_teleconsultation")
    delete = operation("delete_teleconsultation")

    # 1. The doctor schedules a call with one more participant, not known yet.
    answer = await create.asyncio_detailed(
        client=doctor, body=models.CreateTeleconsultation.from_dict(create_body)
    )
    assert answer.status_code == HTTPStatus.CREATED
    room_id = answer.parsed.room_id
    assert re.fullmatch(r"[0-9a-f]{24}", room_id)
    assert answer.parsed.to_dict() == {"roomId": room_id}

    # 2. The doctor polls: no link yet.
    answer = await get.asyncio_detailed(room_id, client=doctor)
    assert answer.status_code == HTTPStatus.OK
    assert answer.parsed.to_dict() == {
        "bandyerUserId": DOCTOR_ID,
        "accessLinkURL": None,
        "participantsBandyerCall": CALL[:1],
    }

    # 3. The patient becomes known: everyone is, so the room is created.
    answer = await add.asyncio_detailed(
        room_id, client=doctor, body=models.ParticipantData.from_dict(patient)
    )
    assert (answer.status_code, answer.content) == (HTTPStatus.CREATED, b"")

    # 4. Rescheduling is still allowed; the link stays null until the window opens.
    answer = await update.asyncio_detailed(
        room_id, client=doctor, body=models.UpdateTeleconsultation.from_dict(reschedule)
    )
    assert (answer.status_code, answer.content) == (HTTPStatus.NO_CONTENT, b"")
    answer = await get.asyncio_detailed(room_id, client=patient_caller)
    assert answer.status_code == HTTPStatus.OK
    polled = answer.parsed.to_dict()
    details = polled.pop("details")
    assert polled == {
        "bandyerUserId": PATIENT_ID,
        "accessLinkURL": None,
        "participantsBandyerCall": CALL,
    }
    assert (details["status"], details["connected"]) == ("pending", [])

    # 5. The call is due: its start moves to now; the patient gets their link.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    answer = await update.asyncio_detailed(
        room_id,
        client=doctor,
        body=models.UpdateTeleconsultation.from_dict({"start_date": now + "Z"}),
    )
    assert answer.status_code == HTTPStatus.NO_CONTENT
    answer = await get.asyncio_detailed(room_id, client=patient_caller)
    assert answer.status_code == HTTPStatus.OK
    link = answer.parsed.access_link_url
    assert re.fullmatch(rf"{re.escape(base_url)}/webrtc/call/[\w.-]+", link), link

    # 6. A locked teleconsultation refuses changes ...
    answer = await update.asyncio_detailed(
        room_id, client=doctor, body=models.UpdateTeleconsultation.from_dict(locked_change)
    )
    assert answer.status_code == HTTPStatus.CONFLICT
    assert isinstance(answer.parsed, models.Error)
    assert answer.parsed.to_dict() == {
        "statusCode": 409,
        "error": "Conflict",
        "message": f"The teleconsultation is locked since {now}.000Z: all participants are "
        "known and its start is within IMMUTABLE_PERIOD_MS, so its room can no longer "
        "change. Cancel it and create a new one instead.",
        "code": "locked",
    }

    # 7. ... but can be cancelled: then it is not found.
    answer = await delete.asyncio_detailed(room_id, client=doctor)
    assert (answer.status_code, answer.content) == (HTTPStatus.NO_CONTENT, b"")
    answer = await get.asyncio_detailed(room_id, client=patient_caller)
    assert answer.status_code == HTTPStatus.NOT_FOUND
    assert answer.parsed.to_dict() == {
        "statusCode": 404,
        "error": f"Room with id {room_id} not found on CRUD",
        "message": f"No teleconsultation has the id {room_id!r}: it never existed or was deleted.",
        "code": "not_found",
    }
