"""`python -m teleconsult serve` as a newcomer runs it: a real process on a real port."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import socket
import sys
from pathlib import Path
from socket import gethostname

import aiohttp
import jwt
import pytest
from livekit import api
from yarl import URL

from tests.fakes.livekit import FakeLiveKit
from tests.helpers import (
    JITSI_DOMAIN,
    JITSI_SECRET,
    LIVEKIT_KEY,
    LIVEKIT_SECRET,
    Server,
    base_url,
    free_port,
    jitsi_env,
    livekit_env,
    raw_get,
    serve,
    served,
    until_ready,
)


async def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The start and the stop are JSON lines like every other; nothing on stderr, which is
    not a terminal here."""
    async with served(tmp_path, LOG_LEVEL="info", SHUTDOWN_GRACE_MS="3000") as server:
        answer = await raw_get(server.port, "/-/ready")
        assert json.loads(answer.split("\r\n\r\n", 1)[1])["status"] == "OK"
    assert server.process.returncode == 0
    assert server.stderr == ""
    lines = [json.loads(line) for line in server.stdout.splitlines()]  # every line is JSON
    for line in lines:
        assert (line.pop("pid"), line.pop("hostname")) == (server.process.pid, gethostname())
        assert isinstance(line.pop("time"), int)
    cli = "teleconsult.cli"
    assert [line for line in lines if line["logger"] == cli] == [
        {
            "level": 30,
            "logger": cli,
            "version": "0.1.0",
            "store": "sqlite",
            "video": "webrtc",
            "identity": "static",
            "msg": f"listening on http://127.0.0.1:{server.port}",
        },
        {
            "level": 30,
            "logger": cli,
            "graceMs": 3000,
            "msg": "shutting down: no new connections; requests in flight have 3 s",
        },
        {"level": 30, "logger": cli, "msg": "stopped"},
    ]


async def test_a_person_at_a_terminal_also_reads_the_start_on_stderr(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HTTP_PORT": str(port), "STORE_URL": f"sqlite:///{tmp_path / 't.db'}"}
    terminal, stderr = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "teleconsult", "serve",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
    )  # fmt: skip
    os.close(stderr)
    try:
        await until_ready(port)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    shown = read_terminal(terminal)
    assert shown == (
        f"teleconsult 0.1.0 listening on http://127.0.0.1:{port} "
        "(store sqlite, video webrtc, identity static)\r\n"
    )
    [started] = [line for line in stdout.decode().splitlines() if '"listening on' in line]
    assert json.loads(started)["msg"] == f"listening on http://127.0.0.1:{port}"


def read_terminal(terminal: int) -> str:
    """All a pseudo-terminal showed, once its other end is closed."""
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the other end is closed and everything was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    return shown.decode()


async def test_serve_warns_at_start_of_a_variable_that_looks_like_a_setting(
    tmp_path: Path,
) -> None:
    async with served(tmp_path, IMMUTABLE_PERIOD="ten-minutes") as server:
        pass
    lines = [json.loads(line) for line in server.stdout.splitlines()]
    [warning] = [line for line in lines if line.get("variable") == "IMMUTABLE_PERIOD"]
    assert (warning["level"], warning["closest"], warning["msg"]) == (
        40,
        "IMMUTABLE_PERIOD_MS",
        "IMMUTABLE_PERIOD is not a teleconsult setting and is ignored; did you mean "
        "IMMUTABLE_PERIOD_MS?",
    )
    assert "ten-minutes" not in server.stdout


async def test_serve_stops_when_the_store_cannot_open(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    env = {
        **os.environ,
        "HTTP_PORT": str(free_port()),
        "STORE_URL": f"sqlite:///{tmp_path / 'dir.db'}",
    }
    process = await serve(env)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 1
    assert stderr.decode().splitlines()[-1] == (
        f"teleconsult: cannot start: Cannot open the SQLite store at {tmp_path / 'dir.db'}: "
        "unable to open database file."
    )


async def test_serve_stops_with_one_line_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HTTP_PORT": str(port), "STORE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
        process = await serve(env)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 1
    assert stderr.decode().splitlines() == [
        "teleconsult: cannot listen on HTTP_HOST:HTTP_PORT: "
        f"error while attempting to bind on address ('127.0.0.1', {port}): address already in use."
    ]


def readme_block(heading: str) -> str:
    """The first shell block of a README section."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split(f"## {heading}\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "API=http://127.0.0.1:${HTTP_PORT:-3000}\n" in block  # another port, as it says
    return block


async def run_block(block: str, port: int) -> str:
    """Run a README block in bash, as its reader would, against the server on `port`."""
    shell = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", block, env={**os.environ, "HTTP_PORT": str(port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(shell.communicate(), timeout=60)
    assert shell.returncode == 0, stderr.decode()
    return stdout.decode()


async def run_the_readme_tour(tmp_path: Path, *, vendor_links: bool = False, **environ: str) -> str:
    """The README's tour, as written, against `teleconsult serve` with `environ`: its output.
    With `vendor_links`, the lines that open the link are left out (a vendor's host is not
    reachable from here)."""
    tour = readme_block("A tour of the API")
    writes = [line for line in tour.splitlines() if " -X " in line]
    assert len(writes) == 6
    assert all("-H 'miauserid: doctor-1'" in line for line in writes)  # the caller, from step 1
    if vendor_links:
        tour = "\n".join(line for line in tour.splitlines() if '"$LINK"' not in line)
    async with served(tmp_path, **environ) as server:
        output = await run_block(tour, server.port)
    for expected in [
        "HTTP/1.1 201 Created",
        '"accessLinkURL":null',  # answers are compact JSON, as the original's
        "HTTP/1.1 204 No Content",
        '"statusCode":409,"error":"Conflict"',
        '"statusCode":404,"error":"Room with id',
    ]:
        assert expected in output, expected
    return output


def handed_out(output: str) -> list[str]:
    """Every link the tour's output shows."""
    return re.findall(r'"accessLinkURL":"([^"]+)"', output)


async def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    """On the default provider (webrtc): the link opens the call page, and stops once the
    teleconsultation is cancelled."""
    output = await run_the_readme_tour(tmp_path)
    [link] = handed_out(output)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/webrtc/call/[\w.-]+", link), link
    assert "the link: 200 text/html; charset=utf-8\n" in output
    assert output.endswith("the link: 410\n")


async def test_the_readme_tour_runs_on_fake(tmp_path: Path) -> None:
    output = await run_the_readme_tour(tmp_path, VIDEO_PROVIDER="fake")
    [link] = handed_out(output)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/fake-video/join/[\w-]+\?l=it", link)
    assert "the link: 200 text/html; charset=utf-8\n" in output
    assert output.endswith("the link: 404\n")


async def test_the_readme_call_prints_a_link_for_each_participant(tmp_path: Path) -> None:
    async with served(tmp_path) as server, aiohttp.ClientSession() as session:
        links = (await run_block(readme_block("Make a call"), server.port)).split()
        assert len(links) == 2
        for link, language in zip(links, ("en", "it"), strict=True):
            assert link.startswith(f"http://127.0.0.1:{server.port}/webrtc/call/")
            async with session.get(link) as page:
                assert page.status == 200
                assert f'<html lang="{language}">' in await page.text()


async def test_the_readme_tour_runs_on_jitsi(tmp_path: Path) -> None:
    output = await run_the_readme_tour(tmp_path, vendor_links=True, **jitsi_env())
    [link] = handed_out(output)  # the patient's, once the call is due

    url = URL(link)
    assert (url.scheme, url.host) == ("https", JITSI_DOMAIN)
    assert url.fragment == 'config.defaultLanguage="it"'
    claims = jwt.decode(url.query["jwt"], JITSI_SECRET, algorithms=["HS256"], audience="jitsi")
    assert claims["room"] == url.path.removeprefix("/")
    assert claims["context"]["user"] == {
        "id": "patient-1",
        "name": "Jane Doe",
        "moderator": "false",
    }
    assert claims["exp"] - claims["nbf"] == 24 * 3600  # no duration: the maximum lifetime


async def test_the_readme_tour_runs_on_livekit(tmp_path: Path, aiohttp_server: Server) -> None:
    livekit = FakeLiveKit()  # in this process, on loopback: the served process calls it
    url = await base_url(aiohttp_server, livekit.app())

    output = await run_the_readme_tour(tmp_path, vendor_links=True, **livekit_env(url))

    [link] = handed_out(output)  # the patient's, once the call is due
    assert link.startswith("https://meet.livekit.io/custom?liveKitUrl=ws%3A%2F%2F127.0.0.1%3A")
    claims = api.TokenVerifier(LIVEKIT_KEY, LIVEKIT_SECRET).verify(URL(link).query["token"])
    assert claims.video is not None
    assert (claims.identity, claims.name, claims.video.room_admin) == (
        "patient-1",
        "Jane Doe",
        False,
    )
    rooms = [
        (call.method, call.request)
        for call in livekit.calls
        if call.method in ("CreateRoom", "DeleteRoom")
    ]
    room = claims.video.room
    assert rooms == [
        ("CreateRoom", api.CreateRoomRequest(name=room, max_participants=2)),
        ("DeleteRoom", api.DeleteRoomRequest(room=room)),
    ]
    assert livekit.rooms == {}


async def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "STORE_URL": f"sqlite:///{tmp_path / 'grace.db'}",
        "VIDEO_PROVIDER": "fake",
        "FAKE_VIDEO_LATENCY_MS": "1500",
        "SHUTDOWN_GRACE_MS": "10000",
    }
    process = await serve(env)
    await until_ready(port)
    body = {
        "participants": {
            "number": 2,
            "data": [
                {"userExternalId": "d", "groups": ["doctor"], "fullName": "D"},
                {"userExternalId": "p", "groups": ["patient"], "fullName": "P"},
            ],
        },
        "start_date": "2030-02-22T15:30:00Z",
        "end_date": "2030-02-22T16:30:00Z",
    }
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(
            session.post(
                f"http://127.0.0.1:{port}/teleconsultation", json=body, headers={"miauserid": "d"}
            )
        )
        await asyncio.sleep(0.5)  # the request is now waiting on the provider
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(aiohttp.ClientConnectionError):  # no longer accepting
            await session.get(f"http://127.0.0.1:{port}/-/healthz")
        response = await asyncio.wait_for(in_flight, timeout=20)
        assert response.status == 201
        await response.release()
    assert await asyncio.wait_for(process.wait(), timeout=20) == 0
