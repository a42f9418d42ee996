"""The answers aiohttp writes itself, shaped by our runner: over real sockets, and the private
surface of aiohttp the runner relies on (a change in aiohttp fails here first); the serve
loop that runs it."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
from collections.abc import Callable

import pytest
from aiohttp import web, web_protocol
from aiohttp.typedefs import Handler
from yarl import URL

from teleconsult.api.hardening import HardenedRequestHandler, HardenedRunner, HardenedServer
from teleconsult.serving import serve_until_stopped
from tests.helpers import AppClient, Client, LogLines, error, raw_answer


async def test_the_runner_serves_every_connection_with_our_handler(
    build_app: Callable[..., web.Application],
) -> None:
    """aiohttp has no public hook for the handler class: `HardenedRunner` overrides
    `AppRunner._make_server` and reads `Server._loop` and `Server._kwargs` (checked against
    aiohttp 3.14.5). If aiohttp renames or reshapes them, this fails before any answer does."""
    runner = HardenedRunner(build_app(), access_log=None, keepalive_timeout=7)
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, HardenedServer)
        assert server.request_handler is not None
        handler = server()
        assert isinstance(handler, HardenedRequestHandler)
        assert handler.access_logger is None
        assert handler._keepalive_timeout == 7  # the runner's arguments reach the handler
    finally:
        await runner.cleanup()
    assert list(inspect.signature(web_protocol.RequestHandler.handle_error).parameters) == [
        "self",
        "request",
        "status",
        "exc",
        "message",
    ]


async def test_a_malformed_request_is_our_json_400_that_echoes_nothing(
    client: Client, log_lines: LogLines
) -> None:
    """aiohttp's own answer is plain text quoting the bytes it stopped at (a token, here)."""
    assert client.server.port is not None
    answer = await raw_answer(
        client.server.port,
        b"GET /-/healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cr3t-t0ken\x01\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 400 Bad Request"), head
    assert b"Content-Type: application/json; charset=utf-8\r\n" in head
    assert b"Server: teleconsult\r\n" in head
    assert b"X-Content-Type-Options: nosniff\r\n" in head
    assert json.loads(body) == error(
        400,
        "The request is not well-formed HTTP/1.1; none of it was read.",
        code="malformed_request",
    )
    assert b"s3cr3t" not in answer
    [line] = [line for line in log_lines.parsed() if line["logger"] == "aiohttp.server"]
    assert (line["level"], line["msg"]) == (40, "malformed HTTP request: BadHttpMessage")
    assert "s3cr3t" not in log_lines.text


async def test_not_http_at_all_is_logged_at_debug_only(client: Client, log_lines: LogLines) -> None:
    """TLS sent to the HTTP port, or a scanner: noise, not a warning."""
    assert client.server.port is not None
    answer = await raw_answer(client.server.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer
    assert b'"code":"malformed_request"' in answer
    assert [line for line in log_lines.parsed() if line["level"] >= 40] == []


async def test_an_exception_that_escapes_every_middleware_is_our_json_500(
    app_client: AppClient, build_app: Callable[..., web.Application], log_lines: LogLines
) -> None:
    """Our middleware answers every error; one placed before it (a plugin's, say) may not."""

    @web.middleware
    async def failing(request: web.Request, handler: Handler) -> web.StreamResponse:
        raise RuntimeError("boom")

    app = build_app()
    app.middlewares.insert(0, failing)
    client = await app_client(app)
    response = await client.get("/-/healthz")
    assert response.status == 500
    assert response.headers["Server"] == "teleconsult"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.json() == error(
        500,
        "The service failed unexpectedly; the error was logged.",
        "Internal Server Error",
        code="internal",
    )
    [line] = [line for line in log_lines.parsed() if line["logger"] == "aiohttp.server"]
    assert "RuntimeError: boom" in line["err"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_the_serve_loop_listens_and_stops_on_a_signal(
    build_app: Callable[..., web.Application], stop: signal.Signals
) -> None:
    """`teleconsult serve`'s loop, in this process: the address bound is reported, the app
    answers with our runner's answers, and a stop signal ends the loop after the cleanup."""
    app = build_app()
    cleaned: list[bool] = []

    async def cleanup(app: web.Application) -> None:
        cleaned.append(True)

    app.on_cleanup.append(cleanup)
    bound: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        serve_until_stopped(HardenedRunner(app, access_log=None), "127.0.0.1", 0, bound.set_result)
    )
    where = await asyncio.wait_for(bound, timeout=10)
    port = URL(where).port
    assert port
    assert where == f"http://127.0.0.1:{port}"
    answer = await raw_answer(port, b"GET / HTTP/1.1\r\nBad\x01Header: y\r\n\r\n")
    assert b"Server: teleconsult\r\n" in answer
    os.kill(os.getpid(), stop)
    await asyncio.wait_for(serving, timeout=10)
    assert cleaned == [True]
