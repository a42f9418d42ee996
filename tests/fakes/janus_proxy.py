"""A real Janus behind a proxy that spoils chosen videoroom requests, for the fault matrix.

The proxy forwards every request of the service to the real Janus (`tests/janus_server.py`)
and, for a request whose videoroom `request` is a name in `faults`, misbehaves as the
fakes of the other vendors do (`tests/fakes/livekit.py`'s `Fault`): an error status without
carrying it out, a delay before carrying it out, the answer late after carrying it out, or
none at all (the connection dropped).
The rooms are Janus's own, as it lists them to the admin key.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes import drop
from tests.fakes.livekit import Fault
from tests.janus_server import JanusServer, signed_token


class FaultyJanus:
    def __init__(self, janus: JanusServer) -> None:
        self.janus = janus
        self.faults: dict[str, deque[Fault]] = {}

    def fail(self, request: str, fault: Fault) -> None:
        self.faults.setdefault(request, deque()).extend([fault] * fault.times)

    @property
    def rooms(self) -> set[str]:
        """Janus's rooms now (asked synchronously: the matrix reads them as a set)."""
        token = signed_token(self.janus.token_secret, 2**31 - 1)
        listed = _videoroom_blocking(
            self.janus.http_url, token, {"request": "list", "admin_key": self.janus.admin_key}
        )
        return {str(room["room"]) for room in listed["list"]}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/janus{tail:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        message = json.loads(raw) if raw else {}
        name = message.get("body", {}).get("request") if isinstance(message, dict) else None
        queue = self.faults.get(str(name))
        fault = queue.popleft() if queue else None
        if fault is not None and not fault.lost:
            await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return web.Response(status=fault.status, text="injected fault")
        url = self.janus.http_url + request.match_info["tail"]
        async with (
            aiohttp.ClientSession() as session,
            session.request(request.method, url, data=raw, params=request.query) as answer,
        ):
            body = await answer.read()
            status = answer.status
        if fault is not None and fault.lost:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.dropped:
            return drop(request)
        return web.Response(status=status, body=body, content_type="application/json")


def _videoroom_blocking(url: str, token: str, body: dict[str, object]) -> dict[str, Any]:
    def post(path: str, message: dict[str, object]) -> dict[str, Any]:
        payload = json.dumps({**message, "transaction": "matrix", "token": token}).encode()
        request = urllib.request.Request(url + path, data=payload, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            found: dict[str, Any] = json.loads(answer.read())
            return found

    path = f"/{post('', {'janus': 'create'})['data']['id']}"
    handle = post(path, {"janus": "attach", "plugin": "janus.plugin.videoroom"})
    data: dict[str, Any] = post(
        f"{path}/{handle['data']['id']}", {"janus": "message", "body": body}
    )["plugindata"]["data"]
    post(path, {"janus": "destroy"})
    return data
