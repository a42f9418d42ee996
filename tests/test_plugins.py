"""The plugin contract: every hook documented and exercised; the documented example works."""

from __future__ import annotations

import ast
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from teleconsult import plugin
from teleconsult.api.hardening import HardenedRunner
from teleconsult.core.domain import Level, ProviderLimits, RoomSpec
from teleconsult.errors import ConfigurationError
from teleconsult.plugin import NoSettings
from teleconsult.providers import hookspecs
from teleconsult.providers.hookspecs import hookimpl
from teleconsult.providers.manager import identity_providers, make_plugin_manager, video_providers
from teleconsult.providers.protocols import CreatedRoom, JoinRequest, VideoProviderPlugin
from teleconsult.services import SERVICES
from tests.helpers import (
    DOCTOR,
    PATIENT,
    FrozenClock,
    MakeClient,
    create,
    error,
    join,
    teleconsultation,
)

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DOC = (ROOT / "docs" / "plugins.md").read_text()
HOOKS = sorted(
    name
    for name in dir(hookspecs)
    if name.startswith("register_") and callable(getattr(hookspecs, name))
)


def test_there_are_hooks() -> None:
    assert HOOKS == ["register_identity_providers", "register_routes", "register_video_providers"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert f"\n### {hook}()\n" in PLUGINS_DOC
    assert getattr(hookspecs, hook).__doc__


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_implemented_by_a_built_in_plugin(hook: str) -> None:
    implementations = [
        impl.plugin_name for impl in getattr(make_plugin_manager().hook, hook).get_hookimpls()
    ]
    assert implementations, f"no built-in plugin implements {hook}"


def test_built_in_providers_come_through_the_entry_point_group() -> None:
    manager = make_plugin_manager()
    assert sorted(video_providers(manager)) == [
        "bandyer", "fake", "janus", "jitsi", "livekit", "webrtc"
    ]  # fmt: skip
    assert sorted(identity_providers(manager)) == ["auth0", "static"]
    assert {name for name, _ in manager.list_name_plugin()} >= {
        "auth0",
        "bandyer",
        "fake",
        "jitsi",
        "livekit",
        "static",
        "webrtc",
    }


def test_the_core_imports_no_provider() -> None:
    offenders = []
    for path in (ROOT / "teleconsult").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.startswith(("teleconsult_", "plugins"))
            ]
    assert offenders == []


def test_two_providers_with_one_name_stop_the_start() -> None:
    class Clash:
        @hookimpl
        def register_video_providers(self) -> list[VideoProviderPlugin[NoSettings]]:
            return [
                VideoProviderPlugin(
                    name="fake",
                    create=lambda context: None,  # type: ignore[arg-type, return-value]
                    settings=NoSettings,
                )
            ]

    with pytest.raises(ConfigurationError) as raised:
        video_providers(make_plugin_manager([Clash()]))
    assert str(raised.value) == "Two plugins register a video provider named 'fake'."


def test_a_hook_with_a_misspelt_name_stops_the_start() -> None:
    class Misspelt:
        @hookimpl
        def register_video_provider(self) -> list[VideoProviderPlugin[NoSettings]]:
            return []

    with pytest.raises(ConfigurationError) as raised:
        make_plugin_manager([Misspelt()])
    assert str(raised.value).startswith("plugin ")
    assert "register_video_provider" in str(raised.value)


def load_documented_example() -> types.ModuleType:
    match = re.search(r"<!-- example-plugin -->\n```python\n(.*?)```", PLUGINS_DOC, re.DOTALL)
    assert match is not None, "docs/plugins.md lost its example plugin"
    module = types.ModuleType("teleconsult_echo")
    sys.modules[module.__name__] = module  # as an import does: its annotations resolve there
    exec(compile(match.group(1), "docs/plugins.md", "exec"), module.__dict__)  # noqa: S102
    return module


async def test_the_documented_example_plugin_runs_a_teleconsultation(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    """The minimal plugin offers the lifecycle only: the five core endpoints work through it."""
    client = await make_client(plugins=[load_documented_example()], VIDEO_PROVIDER="echo")
    provider = client.app[SERVICES].video
    assert provider.name == "echo"

    room_id = await create(client, teleconsultation(2, DOCTOR))
    path = f"/teleconsultation/{room_id}"
    response = await client.post(f"{path}/participants/data", json=PATIENT)
    assert response.status == 201
    [provider_room] = provider.rooms  # type: ignore[attr-defined]
    response = await client.patch(path, json={"start_date": "2030-02-22T11:00:00Z"})
    assert response.status == 204
    clock.advance(hours=1)

    status, body = await join(client, room_id, "patient-1")
    assert status == 200
    assert body == {
        "bandyerUserId": "patient-1",
        "accessLinkURL": f"https://video.example/rooms/{provider_room}/patient-1?lang=it",
        "participantsBandyerCall": [
            {"bandyerUserId": "doctor-1", "fullName": "Joe Smith"},
            {"bandyerUserId": "patient-1", "fullName": "Jane Doe"},
        ],
    }  # no `details`: the provider does not describe rooms
    response = await client.delete(path)
    assert response.status == 204
    assert provider.rooms == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("method", "path", "capability"),
    [
        ("POST", "/credentials", "SDK credentials"),
        ("DELETE", "/teleconsultation/{room_id}/uploads", "uploads"),
        ("POST", "/settings/background-image", "virtual backgrounds"),
        ("PATCH", "/settings/update", "virtual backgrounds"),
    ],
)
async def test_an_endpoint_needing_a_missing_capability_is_a_501(
    make_client: MakeClient, method: str, path: str, capability: str
) -> None:
    client = await make_client(
        plugins=[load_documented_example()],
        VIDEO_PROVIDER="echo",
        TELECONSULTATION_DELETE_UPLOADS="true",
        ADMIN_GROUPS="ops",  # the company's backgrounds are an operator's
    )
    room_id = await create(client, teleconsultation(2, DOCTOR, PATIENT))
    body = {"background_alias": "x"} if path == "/settings/update" else None
    headers = {"miauserid": "doctor-1", "miausergroups": "ops"}
    response = await client.request(
        method, path.format(room_id=room_id), json=body, headers=headers
    )
    assert response.status == 501
    assert await response.json() == error(
        501, f"The echo video provider does not offer {capability}."
    )


def test_plugins_import_nothing_of_the_core_but_its_plugin_surface() -> None:
    offenders = []
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = (
                    [node.module]
                    if node.module != "teleconsult"
                    else [f"teleconsult.{alias.name}" for alias in node.names]
                )
            offenders += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if (name == "teleconsult" or name.startswith("teleconsult."))
                and name != "teleconsult.plugin"
            ]
    assert offenders == []


def test_the_plugin_surface_exports_what_it_names() -> None:
    assert sorted(plugin.__all__) == sorted(
        name for name in vars(plugin) if not name.startswith("_") and name != "annotations"
    )
    assert all(hasattr(plugin, name) for name in plugin.__all__)


async def test_a_provider_must_call_itself_by_its_registered_name(
    build_app: Callable[..., web.Application],
) -> None:
    example = load_documented_example()

    class Renamed:
        @hookimpl
        def register_video_providers(self) -> list[VideoProviderPlugin[NoSettings]]:
            return [
                VideoProviderPlugin(
                    name="other", create=example.create, settings=example.EchoSettings
                )
            ]

    runner = HardenedRunner(build_app(plugins=[Renamed()], VIDEO_PROVIDER="other"))
    with pytest.raises(ConfigurationError) as raised:
        await runner.setup()
    await runner.cleanup()
    assert str(raised.value) == "the provider registered as 'other' calls itself 'echo'."


async def test_live_connections_close_as_the_server_begins_to_stop(
    build_app: Callable[..., web.Application],
) -> None:
    """Before the grace for requests in flight, which an open WebSocket would hold."""
    calls: list[str] = []

    class Live:
        name = "live"
        limits = ProviderLimits()

        async def ensure_user(self, external_id: str, level: Level) -> str:
            return external_id

        async def create_room(self, spec: RoomSpec) -> CreatedRoom:
            return CreatedRoom("room")

        async def delete_room(self, provider_room_id: str) -> None:
            return None

        def join_link(self, join: JoinRequest) -> str:
            return "https://live.example/room"

        async def check(self) -> None:
            return None

        async def close_connections(self) -> None:
            calls.append("close_connections")

        async def close(self) -> None:
            calls.append("close")

    class Plugin:
        @hookimpl
        def register_video_providers(self) -> list[VideoProviderPlugin[NoSettings]]:
            return [
                VideoProviderPlugin(name="live", create=lambda context: Live(), settings=NoSettings)
            ]

    runner = HardenedRunner(build_app(plugins=[Plugin()], VIDEO_PROVIDER="live"))
    await runner.setup()
    assert isinstance(runner.app[SERVICES].video, plugin.LiveConnections)
    await runner.cleanup()

    assert calls == ["close_connections", "close"]
