"""The composition root: no import cycle, a light plugin surface, no state shared by apps."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from aiohttp import web
from teleconsult_fake import FakeVideo

from teleconsult.plugin import (
    DeclaredSettings,
    ProviderContext,
    VideoProviderPlugin,
    hookimpl,
    setting,
)
from teleconsult.services import SERVICES
from tests.helpers import Client, LogLines, MakeClient, Server, raw_answer

PACKAGE = Path(__file__).parent.parent / "teleconsult"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_at_load(tree: ast.Module) -> set[str]:
    """What a module imports when it loads: its top-level imports (those under `if
    TYPE_CHECKING:` and inside functions run later, if ever), with each imported name
    as a possible submodule."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names.update(alias.name for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.module:
                names.add(inner.module)
                names.update(f"{inner.module}.{alias.name}" for alias in inner.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """teleconsult's modules, each with the teleconsult modules its loading loads (a
    module's own parent packages left out: they are loading already)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        loads: set[str] = set()
        for imported in imported_at_load(ast.parse(path.read_text())):
            parts = imported.split(".")
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                    loads.add(prefix)
        graph[name] = loads
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle a depth-first walk meets, as the modules along it."""
    found: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for loaded in sorted(graph[module]):
            if state.get(loaded) == "open":
                found.append([*path[path.index(loaded) :], loaded])
            elif loaded not in state:
                visit(loaded)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_no_teleconsult_module_imports_itself_back() -> None:
    """keys.py and the API package imported each other; the app's key now lives in a
    module that imports types only."""
    graph = import_graph()
    assert "teleconsult.services" in graph
    assert graph["teleconsult.services"] <= {"teleconsult"}  # types only, under TYPE_CHECKING
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_importing_the_plugin_surface_loads_no_store_driver_and_little_of_the_core() -> None:
    """A plugin imports `teleconsult.plugin`; it loaded 81 of about 90 core modules, with
    pymongo, aiosqlite and aiohttp_apigami, through keys.py."""
    program = (
        "import json, sys, teleconsult.plugin; "
        "print(json.dumps(sorted(name for name in sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(  # noqa: S603  # this interpreter, a fixed program
            [sys.executable, "-c", program], check=True, capture_output=True, text=True
        ).stdout
    )
    assert not {"pymongo", "aiosqlite", "aiohttp_apigami", "marshmallow"} & set(loaded)
    ours = [name for name in loaded if name.split(".")[0] == "teleconsult"]
    assert not [name for name in ours if name.startswith(("teleconsult.api", "teleconsult.app"))]
    # 27 now: the surface declares settings (configuration's small modules, on pydantic) and
    # names the store's aggregates a provider reaches (documents, provider data); a bound, so
    # that a new import of the API or the drivers shows here. 31 with the call page every
    # provider that serves it reaches (teleconsult.callpage and its settings); 33 with its ICE
    # servers (teleconsult.callpage.ice), shared by the providers that serve the page; 34 with
    # the links' credentials those providers share (teleconsult.callpage.links); 35 with who
    # such a link lets in (teleconsult.callpage.seats); 36 with the live calls' protocols, split
    # from protocols.py to keep it under 450 lines (teleconsult.providers.live).
    assert len(ours) <= 36, ours


def declaring(name: str, key: str, marker: str) -> object:
    """A plugin installing a video provider `name` that declares a secret setting `key` and
    the link marker `marker`."""

    class Declared(DeclaredSettings):
        secret: str = setting(key, "", f"`{name}` provider: its key", secret=True)

    def create(context: ProviderContext[Declared]) -> FakeVideo:
        provider = FakeVideo(context.server_url)
        provider.name = name
        return provider

    class Declaring:
        @hookimpl
        def register_video_providers(self) -> list[VideoProviderPlugin[Declared]]:
            return [
                VideoProviderPlugin(
                    name=name, create=create, link_markers=(marker,), settings=Declared
                )
            ]

    return Declaring()


async def test_two_apps_in_one_process_redact_each_its_own_secrets_and_links(
    make_client: MakeClient, log_lines: LogLines, aiohttp_server: Server
) -> None:
    """Secrets and link markers were module-level sets every app filled: an app redacted
    the secrets of every other app built in the process, and its own only by chance. And
    aiohttp's Server header and error answer were patched for every server in the process."""
    alpha = await make_client(
        plugins=[declaring("alpha", "ALPHA_KEY", "/alpha-join/")],
        VIDEO_PROVIDER="alpha",
        ALPHA_KEY="alpha-s3cret",
    )
    beta = await make_client(
        plugins=[declaring("beta", "BETA_KEY", "/beta-join/")],
        VIDEO_PROVIDER="beta",
        BETA_KEY="beta-s3cret",
    )
    assert alpha.app[SERVICES].redactor is not beta.app[SERVICES].redactor
    paths = ["/nope/alpha-s3cret", "/nope/beta-s3cret", "/x/alpha-join/a1", "/x/beta-join/b1"]
    logged = {}
    for client in (alpha, beta):
        for path in paths:
            response = await client.get(path)
            assert response.status == 404
            [line] = [
                line
                for line in log_lines.parsed()
                if line["msg"] == "request completed" and line["reqId"] not in logged
            ]
            logged[line["reqId"]] = (client is alpha, path, line["req"]["url"])
    assert sorted(logged.values()) == [
        (False, "/nope/alpha-s3cret", "/nope/alpha-s3cret"),
        (False, "/nope/beta-s3cret", "/nope/[redacted]"),
        (False, "/x/alpha-join/a1", "/x/alpha-join/a1"),
        (False, "/x/beta-join/b1", "[redacted]"),
        (True, "/nope/alpha-s3cret", "/nope/[redacted]"),
        (True, "/nope/beta-s3cret", "/nope/beta-s3cret"),
        (True, "/x/alpha-join/a1", "[redacted]"),
        (True, "/x/beta-join/b1", "/x/beta-join/b1"),
    ]

    # Neither changed anything of the process: a plain aiohttp app served beside them keeps
    # aiohttp's own Server header and its own plain-text 400 for a request it cannot parse.
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="plain")

    plain = web.Application()
    plain.router.add_get("/", hello)
    served = await aiohttp_server(plain)
    assert served.port is not None
    for port, ours in [(port_of(alpha), True), (port_of(beta), True), (served.port, False)]:
        good = await raw_answer(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        bad = await raw_answer(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n")
        for answer in (good, bad):
            head = answer.partition(b"\r\n\r\n")[0]
            assert (b"\r\nServer: teleconsult\r\n" in head) is ours, head
            assert (b"\r\nServer: Python/" in head and b" aiohttp/" in head) is not ours, head
        head, _, body = bad.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), head
        assert (b"Bad\\x01Header" in body) is not ours, body  # aiohttp's own quotes the request
        if ours:
            assert json.loads(body)["code"] == "malformed_request"
        else:
            assert b"Content-Type: text/plain; charset=utf-8\r\n" in head


def port_of(client: Client) -> int:
    """The port a test client's server listens on."""
    assert client.server.port is not None
    return client.server.port
