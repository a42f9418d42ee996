"""A real Janus for the tests: its configuration written to a temporary folder, the process
run inside a network namespace this module makes and removes.

Janus gathers no ICE candidate on a loopback interface, so it runs in a namespace of its own
joined to this one by a veth pair: the namespace's end has `NS_ADDRESS` (Janus's HTTP API,
WebSocket API and media), this one's end has `HOST_ADDRESS` (where the service listens, and
where Janus's event handler posts). Chromium pages that exchange media with Janus run in the
namespace too (`in_namespace`). The /24 used is picked from the process id so that two test
runs on one machine never share an address. Needs root, as CI has.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

JANUS = "/usr/bin/janus"
JANUS_LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
HTTP_PORT = 8088
WS_PORT = 8188
RTP_PORTS = (40000, 40199)
"""Janus's media ports: a selected candidate pair whose remote port is in here went through
Janus."""
UNUSED_PLUGINS = [
    "audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip", "streaming",
    "textroom", "videocall", "voicemail",
]  # fmt: skip
UNUSED_TRANSPORTS = ["mqtt", "nanomsg", "pfunix", "rabbitmq"]
UNUSED_EVENT_HANDLERS = ["gelfevh", "mqttevh", "nanomsgevh", "rabbitmqevh", "wsevh"]


@dataclass(frozen=True)
class Namespace:
    """A network namespace and the veth pair that joins it to this one."""

    name: str
    ns_address: str
    host_address: str

    def run(self, *command: str) -> list[str]:
        """`command` as it runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]


@dataclass
class JanusServer:
    """A running Janus: where it answers and the secrets its configuration holds."""

    namespace: Namespace
    folder: Path
    events_url: str
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    events_user: str = "janus"
    events_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.namespace.ns_address}:{HTTP_PORT}/janus"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.namespace.ns_address}:{WS_PORT}"

    def environ(self, **extra: str) -> dict[str, str]:
        """The service's variables for this Janus."""
        return {
            "VIDEO_PROVIDER": "janus",
            "JANUS_URL": self.http_url,
            "JANUS_PUBLIC_URL": self.ws_url,
            "JANUS_ADMIN_KEY": self.admin_key,
            "JANUS_TOKEN_SECRET": self.token_secret,
            "JANUS_EVENTS_USER": self.events_user,
            "JANUS_EVENTS_PASSWORD": self.events_password,
            "JANUS_TIMEOUT_MS": "2000",
            **extra,
        }

    def write_configuration(self) -> None:
        files = {
            "janus.jcfg": self._core(),
            "janus.plugin.videoroom.jcfg": f'general: {{\n  admin_key = "{self.admin_key}"\n}}\n',
            "janus.transport.http.jcfg": (
                f'general: {{\n  json = "plain"\n  base_path = "/janus"\n  http = true\n'
                f"  port = {HTTP_PORT}\n  https = false\n}}\n"
                "admin: {\n  admin_http = false\n}\n"
            ),
            "janus.transport.websockets.jcfg": (
                f'general: {{\n  json = "plain"\n  ws = true\n  ws_port = {WS_PORT}\n'
                "  wss = false\n}\nadmin: {\n  admin_ws = false\n}\n"
            ),
            "janus.eventhandler.sampleevh.jcfg": (
                'general: {\n  enabled = true\n  events = "core,sessions,handles,plugins,webrtc"\n'
                f'  grouping = true\n  json = "plain"\n  backend = "{self.events_url}"\n'
                f'  backend_user = "{self.events_user}"\n'
                f'  backend_pwd = "{self.events_password}"\n'
                "  max_retransmissions = 3\n  retransmissions_backoff = 100\n}\n"
            ),
        }
        for name, text in files.items():
            (self.folder / name).write_text(text)

    def _core(self) -> str:
        def disabled(names: list[str]) -> str:
            return ",".join(f"libjanus_{name}.so" for name in names)

        return f"""general: {{
  configs_folder = "{self.folder}"
  plugins_folder = "{JANUS_LIBRARIES}/plugins"
  transports_folder = "{JANUS_LIBRARIES}/transports"
  events_folder = "{JANUS_LIBRARIES}/events"
  loggers_folder = "{JANUS_LIBRARIES}/loggers"
  debug_level = 3
  token_auth = true
  token_auth_secret = "{self.token_secret}"
  session_timeout = 60
}}
media: {{
  rtp_port_range = "{RTP_PORTS[0]}-{RTP_PORTS[1]}"
}}
nat: {{
  ice_enforce_list = "{self.namespace.ns_address}"
}}
plugins: {{
  disable = "{disabled(UNUSED_PLUGINS)}"
}}
transports: {{
  disable = "{disabled(UNUSED_TRANSPORTS)}"
}}
loggers: {{
  disable = "libjanus_jsonlog.so"
}}
events: {{
  broadcast = true
  disable = "{disabled(UNUSED_EVENT_HANDLERS)}"
  stats_period = 0
}}
"""

    def start(self) -> None:
        """Start Janus in the namespace and wait until its HTTP API answers (blocking: a
        fixture of any kind may start it; an async test calls `restart`)."""
        self.write_configuration()
        # No core file: Janus 1.1.2 may crash while it shuts down with data channels open
        # (tearing down their SCTP associations), after the test is done with it.
        command = self.namespace.run(
            "prlimit", "--core=0",
            JANUS, "-F", str(self.folder), "-C", str(self.folder / "janus.jcfg"),
            "--log-stdout", "--disable-colors",
        )  # fmt: skip
        with (self.folder / "janus.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        self._until_ready()

    def _until_ready(self) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own http URL
            self.http_url, data=json.dumps(INFO).encode(), method="POST"
        )
        for _ in range(200):
            assert self.process is not None
            assert self.process.poll() is None, self.log()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(request, timeout=1) as answer,  # noqa: S310
            ):
                if answer.status == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"Janus did not answer in 10 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    async def restart(self) -> None:
        """Janus forgets the rooms made through its API: what a crash or an upgrade does."""
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)

    def log(self) -> str:
        path = self.folder / "janus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


INFO = {"janus": "info", "transaction": "ready"}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)  # noqa: S603, S607


@contextlib.contextmanager
def network_namespace() -> Iterator[Namespace]:
    """A namespace joined to this one by a veth pair, with routes both ways; removed after."""
    tag = os.getpid() % 100_000
    subnet = f"198.18.{tag % 250 + 1}"
    name = f"tcjanus{tag}"
    host_end, ns_end = f"tcjh{tag}", f"tcjn{tag}"
    namespace = Namespace(name, f"{subnet}.1", f"{subnet}.2")
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _ip("link", "set", ns_end, "netns", name)
        _ip("addr", "add", f"{namespace.host_address}/32", "dev", host_end)
        _ip("link", "set", host_end, "up")
        _ip("route", "add", f"{namespace.ns_address}/32", "dev", host_end)
        inside = ["-n", name]
        _ip(*inside, "addr", "add", f"{namespace.ns_address}/32", "dev", ns_end)
        _ip(*inside, "link", "set", ns_end, "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "route", "add", f"{namespace.host_address}/32", "dev", ns_end)
        yield namespace
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_end)  # takes its peer with it
        _ip("netns", "del", name)


def chromium_wrapper(folder: Path, namespace: Namespace, chromium: str) -> str:
    """An executable that runs Chromium inside the namespace, for Playwright to launch."""
    path = folder / "chromium-in-namespace"
    path.write_text(f'#!/bin/sh\nexec ip netns exec {namespace.name} {chromium} "$@"\n')
    path.chmod(0o755)
    return str(path)


def free_port_at(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


# -- fixtures (registered for every module by tests/conftest.py's `pytest_plugins`) ------------------


@pytest.fixture(name="janus_namespace")
def janus_namespace_fixture() -> Iterator[Namespace]:
    """The test's own namespace (made in about 50 ms), removed at its end: each module that
    imports these fixtures would otherwise make a session one of its own, under one name."""
    with network_namespace() as namespace:
        yield namespace


@pytest.fixture(name="events_port")
def events_port_fixture(janus_namespace: Namespace) -> int:
    """Where the test serves the app for Janus's event handler to reach it."""
    return free_port_at(janus_namespace.host_address)


@pytest.fixture(name="janus")
def janus_fixture(janus_namespace: Namespace, events_port: int) -> Iterator[JanusServer]:
    """A fresh Janus (new secrets, no rooms) in the namespace, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="janus-") as folder:
        events_url = f"http://{janus_namespace.host_address}:{events_port}/providers/janus/events"
        server = JanusServer(janus_namespace, Path(folder), events_url)
        server.start()
        try:
            yield server
        finally:
            server.stop()


# -- speaking to Janus as its clients do -------------------------------------------------------


def signed_token(secret: str, expires_at: int, *entries: str) -> str:
    """Janus's signed-token format, written here from its documentation (not the plugin's)."""
    data = ",".join([str(expires_at), "janus", "janus.plugin.videoroom", *entries])
    digest = hmac.new(secret.encode(), data.encode(), hashlib.sha1).digest()
    return f"{data}:{base64.b64encode(digest).decode()}"


async def videoroom(url: str, token: str, body: dict[str, object]) -> dict[str, Any]:
    """One videoroom request over Janus's HTTP API, as any client sends it: the answer's
    data, the event's for an asynchronous request (`join`), or Janus's own error."""
    async with aiohttp.ClientSession() as session:

        async def post(path: str, message: dict[str, object]) -> dict[str, Any]:
            payload = {**message, "transaction": secrets.token_hex(6), "token": token}
            async with session.post(url + path, json=payload) as answer:
                found: dict[str, Any] = await answer.json()
                return found

        created = await post("", {"janus": "create"})
        if created["janus"] == "error":
            return {"janus_error": created["error"]["code"]}
        path = f"/{created['data']['id']}"
        handle = await post(path, {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        answer = await post(f"{path}/{handle['data']['id']}", {"janus": "message", "body": body})
        if answer["janus"] == "error":
            return {"janus_error": answer["error"]["code"]}
        if answer["janus"] == "ack":  # asynchronous: its event comes on the long poll
            async with session.get(url + path, params={"token": token, "maxev": "1"}) as polled:
                answer = await polled.json()
        data: dict[str, Any] = answer["plugindata"]["data"]
        await post(path, {"janus": "destroy"})
        return data
