"""The `webrtc` provider's signaling at scale: N pages idle in calls on one replica.

    python bench/signaling.py                     # 50, 200, 500, 1000, 2000 pages, and replicas
    python bench/signaling.py client <args...>    # the load generator (started by the above)

The server runs alone on CPU 1 (`taskset`), SQLite store; the load generator, on CPU 0,
speaks the call page's protocol over WebSockets: each consultation's doctor joins, then its
patient (the doctor hears `peer-joined`), the patient offers and the doctor answers, and
both stay connected (aiohttp answers the server's pings). Once every page is idle it
measures, over BENCH_IDLE_SECONDS: the server's CPU (/proc), its RSS, and the store
operations per second (the sum of `teleconsult_store_operation_duration_seconds_count`
in /-/metrics). Then BENCH_PROBES patients leave and join again one at a time: the delay
from the `join` sent to the doctor's `peer-joined` (p50/p99), on the same replica, and with
the doctors on a second replica sharing the SQLite file (through the store).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # (bench/ is not a package: run.py is beside)
    LOAD_CPU,
    PYTHON,
    ROOT,
    at,
    cpu_seconds,
    create_many,
    fetch,
    percentile,
    person,
    request,
    rss_kib,
    teleconsult,
    teleconsultation_body,
)

PAGES = [int(n) for n in os.environ.get("BENCH_PAGES", "50,200,500,1000,2000").split(",")]
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "20"))
PROBES = int(os.environ.get("BENCH_PROBES", "200"))
REPLICA_PAGES = int(os.environ.get("BENCH_REPLICA_PAGES", "200"))
POLL_MS = 250
"""WEBRTC_POLL_INTERVAL_MS's default: the refresh interval of the pages of other replicas."""
USERS = ("doctor-1", "patient-1")
STORE_OPERATIONS = re.compile(r"^teleconsult_store_operation_duration_seconds_count\{.*\} (\S+)$")
SERVICE = {
    "VIDEO_PROVIDER": "webrtc",
    "CALL_PAGE_LOBBY": "false",  # straight in: the lobby is another benchmark's business
    "IMMUTABLE_PERIOD_MS": "0",  # links at once
    "LOG_LEVEL": "warn",
}


# -- the load generator (CPU 0) ----------------------------------------------------------------


class Page:
    """One participant's page: its WebSocket, what it was told, and a reader."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, joined: dict[str, Any]) -> None:
        self.ws = ws
        self.id: str = joined["self"]["id"]
        self.heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.heard.put_nowait(json.loads(message.data))

    async def next(self, kind: str) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.heard.get(), 30)
            if message["type"] == kind:
                return message


async def open_page(session: aiohttp.ClientSession, link: str) -> tuple[Page, float]:
    """Connected and joined; when its `join` was sent (monotonic)."""
    ws = await session.ws_connect(link.replace("http", "ws", 1) + "/ws", autoping=True)
    sent = time.monotonic()
    await ws.send_json({"type": "join"})
    joined = json.loads((await ws.receive(timeout=30)).data)
    if joined["type"] != "joined":
        raise SystemExit(f"not joined: {joined}")
    return Page(ws, joined), sent


async def call(session: aiohttp.ClientSession, doctor_link: str, patient_link: str) -> float:
    """Doctor then patient; the patient offers, the doctor answers. The join's delay."""
    doctor, _ = await open_page(session, doctor_link)
    patient, sent = await open_page(session, patient_link)
    await doctor.next("peer-joined")
    delay = time.monotonic() - sent
    await patient.ws.send_json({"type": "offer", "to": doctor.id, "sdp": "v=0 bench offer"})
    await doctor.next("offer")
    await doctor.ws.send_json({"type": "answer", "to": patient.id, "sdp": "v=0 bench answer"})
    await patient.next("answer")
    CALLS.append((doctor, patient, patient_link))
    return delay


CALLS: list[tuple[Page, Page, str]] = []


async def gated(gate: asyncio.Semaphore, session: aiohttp.ClientSession, pair: list[str]) -> float:
    async with gate:
        return await call(session, pair[0], pair[1])


async def rejoin(session: aiohttp.ClientSession, index: int) -> float:
    """A patient's page closes and opens again: from its `join` to the doctor's news."""
    doctor, patient, link = CALLS[index]
    await patient.ws.close()
    await doctor.next("peer-left")
    await asyncio.sleep(
        secrets.SystemRandom().uniform(0, POLL_MS / 1000)
    )  # not in step with the hub's polls
    again, sent = await open_page(session, link)
    await doctor.next("peer-joined")
    delay = time.monotonic() - sent
    CALLS[index] = (doctor, again, link)
    return delay


async def client(pairs: list[list[str]], probes: int) -> None:
    """Reads commands on stdin: `calls` (open every call), `probe` (rejoins), `quit`."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while command := (await reader.readline()).decode().strip():
            if command == "calls":
                gate = asyncio.Semaphore(20)
                await asyncio.gather(*(gated(gate, session, pair) for pair in pairs))
                print(json.dumps({"calls": len(CALLS)}), flush=True)
            elif command == "probe":
                delays = [await rejoin(session, i % len(CALLS)) for i in range(probes)]
                print(json.dumps({"delays": delays}), flush=True)
            else:
                break
        for doctor, patient, _ in CALLS:
            await doctor.ws.close()
            await patient.ws.close()


# -- the orchestration -------------------------------------------------------------------------


def store_operations(base: str) -> float:
    text = fetch(f"{base}/-/metrics", {}).decode()
    return sum(
        float(m.group(1)) for line in text.splitlines() if (m := STORE_OPERATIONS.match(line))
    )


def links_of(base: str, ids: list[str], replica: str | None = None) -> list[list[str]]:
    """Each consultation's doctor's and patient's links (the doctor's on `replica`)."""
    pairs = []
    for room in ids:
        url = f"{base}/teleconsultation/{room}?waitSeconds=20"
        pairs.append(
            [request("GET", url, headers={"miauserid": u})["accessLinkURL"] for u in USERS]
        )
    if replica is not None:
        for pair in pairs:
            pair[0] = re.sub(r"^http://[^/]+", replica, pair[0])
    return pairs


def consultations(base: str, count: int) -> list[str]:
    people = [person("doctor-1", "doctor"), person("patient-1", "patient")]
    start = time.time()
    body = {
        **teleconsultation_body(people, 2),
        "start_date": at(start),
        "end_date": at(start + 7200),
    }
    return create_many(base, [body] * count)


def load(folder: Path, pairs: list[list[str]], probes: int) -> subprocess.Popen[str]:
    (folder / "links.json").write_text(json.dumps(pairs))
    return subprocess.Popen(
        ["taskset", "-c", LOAD_CPU, PYTHON, __file__, "client", str(folder / "links.json"),
         str(probes)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def ask(generator: subprocess.Popen[str], command: str) -> dict[str, Any]:
    assert generator.stdin is not None
    assert generator.stdout is not None
    generator.stdin.write(command + "\n")
    generator.stdin.flush()
    answer: dict[str, Any] = json.loads(generator.stdout.readline())
    return answer


def idle(folder: Path, pages: int) -> dict[str, Any]:
    print(f"signaling: {pages} pages idle in calls on one replica", flush=True)
    with teleconsult(folder, **SERVICE) as (base, pid):
        pairs = links_of(base, consultations(base, pages // 2))
        generator = load(folder, pairs, min(PROBES, pages // 2))
        ask(generator, "calls")
        time.sleep(5)  # the last joins settle
        operations, cpu, wall = store_operations(base), cpu_seconds(pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        seconds = time.monotonic() - wall
        cpu_share = (cpu_seconds(pid) - cpu) / seconds
        operations_per_second = (store_operations(base) - operations - 1) / seconds
        rss = rss_kib(pid, "VmRSS") / 1024
        delays = ask(generator, "probe")["delays"]
        generator.communicate("quit\n", timeout=120)
    result = {
        "pages": pages,
        "cpu_share": cpu_share,
        "rss_mib": rss,
        "store_operations_per_second": operations_per_second,
        **joins(delays),
    }
    print(f"  {json.dumps(result)}", flush=True)
    return result


def across(folder: Path, pages: int) -> dict[str, Any]:
    print(f"signaling: {pages} pages, doctors and patients on two replicas", flush=True)
    database = {"STORE_URL": f"sqlite:///{folder / 'bench.db'}"}
    with (
        teleconsult(folder, **SERVICE, **database) as (base, _),
        teleconsult(folder, **SERVICE, **database) as (other, _),
    ):
        pairs = links_of(base, consultations(base, pages // 2), replica=other)
        generator = load(folder, pairs, min(PROBES, pages // 2))
        ask(generator, "calls")
        delays = ask(generator, "probe")["delays"]
        generator.communicate("quit\n", timeout=120)
    result = {
        "pages": pages,
        "poll_interval_ms": POLL_MS,
        **joins(delays),
    }
    print(f"  {json.dumps(result)}", flush=True)
    return result


def joins(delays: list[float]) -> dict[str, float]:
    return {
        "join_p50_ms": percentile(delays, 0.5) * 1000,
        "join_p99_ms": percentile(delays, 0.99) * 1000,
    }


def signaling(folder: Path) -> dict[str, Any]:
    """Every size of PAGES, then two replicas (bench/run.py's step `signaling`)."""
    sizes = []
    for pages in PAGES:
        (folder / str(pages)).mkdir()
        sizes.append(idle(folder / str(pages), pages))
    (folder / "replicas").mkdir()
    return {"idle": sizes, "replicas": across(folder / "replicas", REPLICA_PAGES)}


def table(result: dict[str, Any]) -> str:
    """The docs' table: one row per number of pages, then the two replicas' joins."""
    rows = [
        '| pages | server CPU (% of a core) | RSS | store operations/s | join to peer\'s "joined" p50 / p99 |',
        "|---|---|---|---|---|",
    ]
    for row in result["idle"]:
        rows.append(
            f"| {row['pages']:,} | {row['cpu_share'] * 100:.1f} | {row['rss_mib']:.0f} MiB "
            f"| {row['store_operations_per_second']:.1f} "
            f"| {row['join_p50_ms']:.1f} / {row['join_p99_ms']:.0f} ms |"
        )
    across = result["replicas"]
    rows.append(
        f"| {across['pages']:,}, on two replicas | | | "
        f"| {across['join_p50_ms']:.0f} / {across['join_p99_ms']:.0f} ms "
        f"(poll interval {across['poll_interval_ms']} ms) |"
    )
    return "\n".join(rows)


def write_docs(result: dict[str, Any]) -> None:
    """Replace the table between the signaling markers of docs/performance.md."""
    doc = ROOT / "docs" / "performance.md"
    start, end = "<!-- signaling:begin -->", "<!-- signaling:end -->"
    text = doc.read_text()
    when = result["machine"]["date"]
    block = (
        f"{start}\nMeasured on {when} (`python bench/run.py signaling`):\n\n{table(result)}\n{end}"
    )
    doc.write_text(text.split(start)[0] + block + text.split(end, 1)[1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        links = json.loads(Path(sys.argv[2]).read_text())
        asyncio.run(client(links, int(sys.argv[3])))
    else:
        import tempfile

        with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as where:
            print(json.dumps(signaling(Path(where)), indent=2))
