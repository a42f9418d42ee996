"""`teleconsult provider-check`: every step against the providers' fakes, faults, clean-up."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from teleconsult.configuration.service_config import load_config
from teleconsult.configuration.settings import Settings
from teleconsult.provider_check import check, report
from tests.fake_auth0 import FakeAuth0Client
from tests.fakes.kaleyra import FakeKaleyra, Fault
from tests.fakes.livekit import FakeLiveKit
from tests.helpers import bandyer_env, jitsi_env, livekit_env

Server = Callable[[web.Application], Awaitable[TestServer]]
VIDEO_STEPS = [
    "create a user (plus)",
    "create the same user again",
    "create a user (basic)",
    "create a room",
    "make the plus participant's link",
    "make the basic participant's link",
    "read the room's details",
    "issue SDK credentials",
    "list the room's files",
    "delete the room",
]


async def run_check(environ: dict[str, str], *user_ids: str) -> dict[str, Any]:
    """The command's JSON report, as `teleconsult provider-check --json` prints it."""
    settings = Settings.from_environ(environ)
    video, identity, steps = await check(settings, load_config(None), environ, user_ids)
    out = io.StringIO()
    report(video, identity, steps, as_json=True, out=out)
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def outcomes(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step["name"], step["outcome"]) for step in document["steps"]]


@pytest.fixture
def environ(store_url: str) -> dict[str, str]:
    return {"STORE_URL": store_url}


async def test_every_step_passes_against_the_fake_kaleyra(
    environ: dict[str, str], kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    document = await run_check({**environ, **bandyer_env(kaleyra_url)})
    assert (document["video"], document["identity"], document["ok"]) == ("bandyer", "static", True)
    assert outcomes(document) == [(name, "ok") for name in VIDEO_STEPS] + [
        ("look up users", "skipped")
    ]
    by_name = {step["name"]: step for step in document["steps"]}
    assert by_name["create a room"]["shape"] == {
        "provider_room_id": "str",
        "links": {"<2 keys>": "str"},
    }
    assert by_name["create a user (plus)"]["detail"] == "the id derived from ours"
    assert by_name["issue SDK credentials"]["detail"] == "for the user asked"
    assert kaleyra.rooms == {}  # the room is gone
    assert sorted(kaleyra.users) == ["teleconsult-check-basic", "teleconsult-check-plus"]


async def test_no_value_of_an_answer_is_printed(
    environ: dict[str, str], kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    settings = Settings.from_environ({**environ, **bandyer_env(kaleyra_url)})
    video, identity, steps = await check(settings, load_config(None), bandyer_env(kaleyra_url), [])
    out = io.StringIO()
    report(video, identity, steps, as_json=False, out=out)
    text = out.getvalue()
    assert "direct-rest-call-handler" not in text  # no link
    assert "token_" not in text  # no SDK token
    assert not re.search(r"room_[0-9a-f]{16}", text)  # no room id
    assert text.splitlines()[-1] == "Every step passed."


@pytest.mark.parametrize(
    ("operation", "failing_step"),
    [
        ("get_room", "read the room's details"),
        ("sdk_credentials", "issue SDK credentials"),
        ("list_uploads", "list the room's files"),
    ],
)
async def test_a_failing_step_says_fail_and_the_room_is_still_deleted(
    environ: dict[str, str],
    kaleyra_url: str,
    kaleyra: FakeKaleyra,
    operation: str,
    failing_step: str,
) -> None:
    kaleyra.fail(operation, Fault(status=500, times=5))
    document = await run_check({**environ, **bandyer_env(kaleyra_url)})
    assert document["ok"] is False
    failed = [step for step in document["steps"] if step["outcome"] == "fail"]
    assert [step["name"] for step in failed] == [failing_step]
    assert failed[0]["detail"].startswith("The bandyer provider failed to ")
    assert ("delete the room", "ok") in outcomes(document)
    assert kaleyra.rooms == {}


async def test_a_failed_deletion_is_tried_again_at_clean_up(
    environ: dict[str, str], kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("delete_room", Fault(status=400))  # not retried by the client: one failure
    document = await run_check({**environ, **bandyer_env(kaleyra_url)})
    assert outcomes(document)[-3:] == [
        ("delete the room", "fail"),
        ("delete the room (clean-up)", "ok"),
        ("look up users", "skipped"),
    ]
    assert kaleyra.rooms == {}


async def test_a_room_that_cannot_be_made_stops_the_video_steps(
    environ: dict[str, str], kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_room", Fault(status=400, message="duration is invalid"))
    document = await run_check({**environ, **bandyer_env(kaleyra_url)})
    assert outcomes(document)[3:] == [("create a room", "fail"), ("look up users", "skipped")]
    assert document["steps"][3]["detail"] == (
        "The bandyer provider failed to create a room: HTTP 400: duration is invalid"
    )


async def test_an_id_the_provider_does_not_keep_is_reported(
    environ: dict[str, str], kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    kaleyra.fail("create_user", Fault(body={"id": "kaleyra-made-this-id"}, times=3))
    document = await run_check({**environ, **bandyer_env(kaleyra_url)})
    first = document["steps"][0]
    assert (first["name"], first["outcome"], first["detail"]) == (
        "create a user (plus)",
        "fail",
        "the provider answered another id than the one derived from ours",
    )


async def test_every_step_passes_against_the_fake_provider(environ: dict[str, str]) -> None:
    document = await run_check({**environ, "VIDEO_PROVIDER": "fake"})
    assert outcomes(document) == [(name, "ok") for name in VIDEO_STEPS] + [
        ("look up users", "skipped")
    ]


async def test_users_are_looked_up_with_the_identity_provider(
    environ: dict[str, str], aiohttp_server: Server
) -> None:
    directory = FakeAuth0Client(
        users={"auth0|doc": {"name": "Joe", "app_metadata": {"groups": ["doctor", "staff"]}}}
    )
    server = await aiohttp_server(directory.app())
    auth = {"VIDEO_PROVIDER": "fake", "AUTH_SERVICE": str(server.make_url("")).rstrip("/")}
    document = await run_check({**environ, **auth}, "auth0|doc", "auth0|nobody")
    lookups = document["steps"][len(VIDEO_STEPS) :]
    assert [(s["name"], s["outcome"]) for s in lookups] == [
        ("look up user id 1", "ok"),
        ("look up user id 2", "fail"),
    ]
    assert lookups[0]["shape"] == [{"external_id": "str", "groups": ["str"], "full_name": "str"}]
    assert lookups[0]["detail"] == "2 group(s)"
    assert lookups[1]["detail"] == "Participant 'auth0|nobody' is not a user known to Auth0."
    assert document["ok"] is False


async def test_the_command_exits_1_when_a_step_failed(
    tmp_path: Path, kaleyra_url: str, kaleyra: FakeKaleyra
) -> None:
    env = {
        **os.environ,
        "STORE_URL": f"sqlite:///{tmp_path / 'check.db'}",
        **bandyer_env(kaleyra_url),
    }
    for fault, code in ((False, 0), (True, 1)):
        if fault:
            kaleyra.fail("get_room", Fault(status=500, times=5))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "teleconsult", "provider-check", "--json",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == code
        assert json.loads(stdout)["ok"] is not fault
    assert kaleyra.rooms == {}


async def test_every_step_passes_against_the_fake_livekit(
    environ: dict[str, str], livekit_url: str, livekit: FakeLiveKit
) -> None:
    document = await run_check({**environ, **livekit_env(livekit_url)})
    assert (document["video"], document["ok"]) == ("livekit", True)
    assert outcomes(document) == [
        # LiveKit keeps no files of a room: the one capability it lacks
        *((name, "skipped" if name == "list the room's files" else "ok") for name in VIDEO_STEPS),
        ("look up users", "skipped"),
    ]
    assert livekit.rooms == {}  # the room is gone


async def test_every_step_a_token_provider_has_passes_for_jitsi(environ: dict[str, str]) -> None:
    """Jitsi has no API: users and rooms are names, links are tokens; nothing else is offered."""
    document = await run_check({**environ, **jitsi_env()})
    assert (document["video"], document["ok"]) == ("jitsi", True)
    not_offered = [
        "read the room's details",
        "issue SDK credentials",
        "list the room's files",
    ]
    assert outcomes(document) == [
        *((name, "skipped" if name in not_offered else "ok") for name in VIDEO_STEPS),
        ("look up users", "skipped"),
    ]


async def test_every_step_the_webrtc_provider_has_passes(environ: dict[str, str]) -> None:
    """The built-in provider keeps its users and rooms in the store the check opens."""
    document = await run_check({**environ, "VIDEO_PROVIDER": "webrtc"})
    assert (document["video"], document["ok"]) == ("webrtc", True)
    not_offered = ["issue SDK credentials", "list the room's files"]
    assert outcomes(document) == [
        *((name, "skipped" if name in not_offered else "ok") for name in VIDEO_STEPS),
        ("look up users", "skipped"),
    ]
