"""The tools of the service configuration's `privileges` on the call page: `chat` and
`screen_sharing` messages are relayed to the seated peers for a level that has the tool, and
refused (the connection closed, with a reason) for one that has not."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import WSMsgType

from tests.helpers import (
    DOCTOR,
    LOBBY,
    PATIENT,
    FrozenClock,
    MakeClient,
    open_call,
    path_of,
    webrtc_call,
)
from tests.test_webrtc import in_call
from tests.test_webrtc_lobby import knock, next_of

NO_TOOLS_FOR_PATIENTS: dict[str, Any] = {
    "privileges": {
        "basic": {"groups": ["patient"], "tools": {"screen_sharing": False}},
        "plus": {"groups": ["doctor"]},
    }
}
"""Patients without chat or screen sharing; doctors with every tool."""


async def test_chat_reaches_the_peers_and_is_never_logged(
    make_client: MakeClient, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="teleconsult")
    call = await in_call(make_client, clock)
    doctor, patient = call.pages["doctor-1"], call.pages["patient-1"]
    await doctor.send_json({"type": "chat", "text": "  The rash looks better  ", "x": 1})
    assert await next_of(patient, "chat") == {
        "type": "chat",
        "from": call.ids["doctor-1"],
        "text": "The rash looks better",
    }
    await patient.send_json({"type": "screen", "sharing": True})
    assert (await next_of(doctor, "screen"))["sharing"] is True
    ours = [r for r in caplog.records if r.name.startswith("teleconsult")]
    assert not [r for r in ours if "rash" in r.getMessage()]
    for ws in (doctor, patient):
        await ws.close()


@pytest.mark.parametrize(
    "message",
    [{"type": "chat", "text": "hello"}, {"type": "screen", "sharing": True}],
)
async def test_a_seat_without_the_tool_is_refused(
    make_client: MakeClient, clock: FrozenClock, message: dict[str, Any]
) -> None:
    call = await in_call(make_client, clock, config=NO_TOOLS_FOR_PATIENTS)
    tools = await call.client.get(path_of(call.links["patient-1"]) + "/tools")
    assert await tools.json() == {"tools": []}
    tools = await call.client.get(path_of(call.links["doctor-1"]) + "/tools")
    assert await tools.json() == {"tools": ["chat", "screen_sharing"]}
    doctor, patient = call.pages["doctor-1"], call.pages["patient-1"]
    await patient.send_json(message)
    closing = await patient.receive(timeout=5)
    assert closing.type is WSMsgType.CLOSE
    assert closing.data == 1008
    assert "tool is not enabled" in str(closing.extra)
    await doctor.send_json({"type": "chat", "text": "still here"})
    assert (await next_of(doctor, "peer-left"))["id"] == call.ids["patient-1"]
    await doctor.close()


@pytest.mark.parametrize(
    "message",
    [{"type": "chat", "text": ""}, {"type": "chat", "text": "x" * 1001}, {"type": "chat"}],
)
async def test_an_invalid_chat_message_is_refused(
    make_client: MakeClient, clock: FrozenClock, message: dict[str, Any]
) -> None:
    call = await in_call(make_client, clock)
    await call.pages["doctor-1"].send_json(message)
    closing = await call.pages["doctor-1"].receive(timeout=5)
    assert (closing.type, closing.data) == (WSMsgType.CLOSE, 1008)
    await call.pages["patient-1"].close()


async def test_a_waiting_page_hears_no_chat(make_client: MakeClient, clock: FrozenClock) -> None:
    client = await make_client(**LOBBY)
    _, links = await webrtc_call(client, clock, DOCTOR, PATIENT)
    doctor, _ = await open_call(client, links["doctor-1"])
    patient, _ = await knock(client, links["patient-1"])
    await next_of(doctor, "knock")
    await doctor.send_json({"type": "chat", "text": "private"})
    await doctor.send_json({"type": "end"})  # the first thing the waiting page hears
    assert await next_of(patient, "ended") == {"type": "ended", "reason": "ended_by_host"}
    for ws in (doctor, patient):
        await ws.close()
