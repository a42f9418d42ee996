"""teleconsult's benchmarks: `make bench` runs them all and writes bench/results and docs.

1. polling   GET /teleconsultation/:id at 100 connections (wrk), against the same-work
             floor (bench/floor.py: the poll's work in a minimal aiohttp app, on the same
             SQLite file) and a bare aiohttp app answering a body of the same size from
             memory: the three in turn, BENCH_ROUNDS times, so each round gives ratios;
2. creation  POST /teleconsultation with N = 2, 5, 10, 25 new participants, bandyer against
             a fake Kaleyra answering every call after 100 ms, each one followed by the
             same provider calls made by a bare client (the floor): our own work is the gap;
3. size      polling p50/p99 with 100 and with 100,000 teleconsultations stored;
   listing   GET /teleconsultations p50/p99 (one participant's page of 20) with 100 and with
             100,000 stored;
4. memory    the service's peak RSS, idle and under the polling load;
5. durability  POST /teleconsultation (fake video, two participants) with SQLite's
             synchronous=FULL (the default: durable on power loss) and NORMAL, sequentially
             and 20 at a time: what the fsync at every commit costs.
6. waiting   BENCH_WAITERS (2,000) teleconsultations locking at the same instant, one
             participant each holding GET ?waitSeconds=30 (bench/waiters.py): the delay from
             the lock time to each answer with the link (p50/p99), the server's CPU and
             memory while they wait.
7. webhooks  deliveries/s to a local receiver (bench/receiver.py) draining a backlog of
             BENCH_WEBHOOK_CHANGES creations' events, and the delay from a change to its
             delivery (p50/p99) at a steady 20 creations/s.
8. signaling the webrtc provider's WebSockets: N pages idle in calls, on one and two
             replicas (bench/signaling.py: CPU, RSS, store operations/s, join delays).

The server runs on CPU 1 and the load generator on CPU 0 (taskset), so wrk is not the
server's bottleneck. Each step prints what it does; results are JSON in bench/results/
and a table in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
POLL_SECONDS = int(os.environ.get("BENCH_POLL_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CREATIONS = 10
SIZE_SECONDS = int(os.environ.get("BENCH_SIZE_SECONDS", "10"))
CONNECTIONS = 100
SERVER_CPU, LOAD_CPU = "1", "0"
START = "2020-01-01T10:00:00Z"  # in the past: locked, so GET hands out a link (the full path)
END = "2020-01-01T11:00:00Z"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered {url}")


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - loopback
        text = response.read()
        return json.loads(text) if text else None


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, cpu: str = SERVER_CPU
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        ["taskset", "-c", cpu, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def teleconsult(folder: Path, **environ: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        "HTTP_PORT": str(port),
        "STORE_URL": f"sqlite:///{folder / 'bench.db'}",
        "LOG_LEVEL": "info",  # as in production: one "request completed" line per request
        "RECONCILE_INTERVAL_MS": "10000",
        "VIDEO_PROVIDER": "fake",  # the figures measure the service, not a video provider
        "ALLOW_ANONYMOUS_WRITES": "true",  # the creations name no caller (off by default)
        **environ,
    }
    with process([PYTHON, "-m", "teleconsult", "serve"], env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/-/healthz")
        yield base, proc.pid


def rss_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, in KiB. `taskset` execs, so pid is the server."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} for {pid}")


WRK_LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, seconds: int, headers: dict[str, str], pid: int | None = None
) -> dict[str, float]:
    """wrk's figures; with the server's `pid`, also the server's CPU time per request (user
    and system), which a neighbour's load on the machine disturbs far less than requests/s."""
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    args = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latencies = {f"p{p}_ms": float(v) * UNITS[u] for p, v, u in WRK_LATENCY.findall(output)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = re.search(r"(\d+) requests in", output)
    figures = {
        "requests_per_second": rps,
        **latencies,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }
    if pid is not None and total is not None:
        figures["cpu_us_per_request"] = (cpu_seconds(pid) - cpu_before) / int(total.group(1)) * 1e6
    return figures


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def teleconsultation_body(participants: list[dict[str, Any]], number: int) -> dict[str, Any]:
    return {
        "participants": {"number": number, "data": participants},
        "start_date": START,
        "end_date": END,
    }


def person(external_id: str, group: str) -> dict[str, Any]:
    return {
        "userExternalId": external_id,
        "groups": [group],
        "fullName": f"Name {external_id}",
        "language": "it",
    }


def seed_records(database: Path, count: int, participant: str | None = None) -> None:
    """Bulk-insert `count` teleconsultations straight into SQLite, as the service writes them
    (the record and the rows that index its participants): each with a participant of its
    own, or all with `participant`."""
    from teleconsult.core.clock import to_micros
    from teleconsult.core.domain import Level, Participant, RecordState, Teleconsultation
    from teleconsult.store.documents import new_object_id, to_document
    from teleconsult.store.sqlite.connection import encode

    now = datetime.now(UTC)
    rows, participants = [], []
    for n in range(count):
        who = participant or f"d{n}"
        start = now + timedelta(days=1, minutes=n)
        record = Teleconsultation(
            id=new_object_id(),
            participants_number=2,
            participants=(Participant(who, ("doctor",), "D", "it", Level.PLUS, who),),
            start_date=start,
            end_date=start + timedelta(hours=1),
            room=None,
            state=RecordState.PUBLIC,
            version=1,
            created_at=now,
            updated_at=now,
            creator_id="bench",
            updater_id="bench",
        )
        dates = (to_micros(record.start_date), to_micros(record.end_date), to_micros(now))
        rows.append((record.id, "PUBLIC", 1, encode(to_document(record)), *dates))
        participants.append((who, dates[0], record.id))
    with sqlite3.connect(database) as connection:
        connection.executemany(
            'INSERT INTO "teleconsultations" (id, state, version, document, start_us, end_us,'
            " updated_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.executemany(
            'INSERT INTO "teleconsultations_participants" (external_id, start_us, id)'
            " VALUES (?, ?, ?)",
            participants,
        )


# -- the benchmarks ----------------------------------------------------------------------------


def polling(folder: Path) -> dict[str, Any]:
    """The service, the same-work floor and the bare app, loaded in turn, ROUNDS times: a
    neighbour's load on the machine hits all three alike, and the ratios come from one round."""
    print(f"polling: {CONNECTIONS} connections, {ROUNDS} rounds of {POLL_SECONDS} s", flush=True)
    headers = {"miauserid": "doctor-1"}
    with teleconsult(folder) as (base, pid):
        idle_kib = rss_kib(pid, "VmRSS")
        room = request(
            "POST",
            f"{base}/teleconsultation",
            teleconsultation_body(
                [person("doctor-1", "doctor"), person("patient-1", "patient")], 2
            ),
        )["roomId"]
        url = f"{base}/teleconsultation/{room}"
        sample = fetch(url, headers)
        provider_room = stored_room(folder / "bench.db", room)
        details = {provider_room: json.loads(sample)["details"]}
        floor_port, bare_port = free_port(), free_port()
        floor_args = [str(floor_port), str(folder / "bench.db"), json.dumps(details), "0"]
        bare_args = [str(bare_port), str(len(sample))]
        with (
            process([PYTHON, str(ROOT / "bench" / "floor.py"), *floor_args]) as floor,
            process([PYTHON, str(ROOT / "bench" / "bare.py"), *bare_args]) as bare,
        ):
            floor_url = f"http://127.0.0.1:{floor_port}/teleconsultation/{room}"
            wait_for(f"http://127.0.0.1:{bare_port}/")
            wait_for_answer(floor_url, headers)
            if fetch(floor_url, headers) != sample:
                raise SystemExit("the floor's answer differs from the service's")
            targets = {
                "service": (url, pid),
                "floor": (floor_url, floor.pid),
                "bare_aiohttp": (f"http://127.0.0.1:{bare_port}/", bare.pid),
            }
            rounds: list[dict[str, dict[str, float]]] = []
            for number in range(ROUNDS):
                rounds.append(
                    {
                        name: wrk(target, POLL_SECONDS, headers, server)
                        for name, (target, server) in targets.items()
                    }
                )
                print(
                    f"  round {number + 1}: "
                    + ", ".join(
                        f"{name} {run['requests_per_second']:.0f}/s "
                        f"({run['cpu_us_per_request']:.0f} us CPU a request)"
                        for name, run in rounds[-1].items()
                    ),
                    flush=True,
                )
        peak_kib = rss_kib(pid, "VmHWM")
    rps = [{name: r[name]["requests_per_second"] for name in r} for r in rounds]
    to_floor = [r["service"] / r["floor"] for r in rps]
    p99_to_floor = [r["service"]["p99_ms"] / r["floor"]["p99_ms"] for r in rounds]
    cpu_to_floor = [
        r["service"]["cpu_us_per_request"] / r["floor"]["cpu_us_per_request"] for r in rounds
    ]
    return {
        "body_bytes": len(sample),
        "rounds": rounds,
        **{name: median_run([r[name] for r in rounds]) for name in targets},
        "ratio_to_floor": statistics.median(to_floor),
        "ratio_to_floor_range": [min(to_floor), max(to_floor)],
        "p99_ratio_to_floor": statistics.median(p99_to_floor),
        "p99_ratio_to_floor_range": [min(p99_to_floor), max(p99_to_floor)],
        "cpu_ratio_to_floor": statistics.median(cpu_to_floor),
        "cpu_ratio_to_floor_range": [min(cpu_to_floor), max(cpu_to_floor)],
        "ratio": statistics.median(r["service"] / r["bare_aiohttp"] for r in rps),
        "memory": {"idle_rss_mib": idle_kib / 1024, "peak_rss_under_load_mib": peak_kib / 1024},
    }


def fetch(url: str, headers: dict[str, str]) -> bytes:
    req = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body


def wait_for_answer(url: str, headers: dict[str, str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            fetch(url, headers)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered {url}")


def stored_room(database: Path, record_id: str) -> str:
    """The provider room id the service stored for a teleconsultation."""
    with sqlite3.connect(database) as connection:
        (document,) = connection.execute(
            'SELECT document FROM "teleconsultations" WHERE id = ?', (record_id,)
        ).fetchone()
    room: str = json.loads(document)["providerRoomId"]
    return room


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def creation(folder: Path) -> dict[str, Any]:
    """Creation through the service, and the same provider calls made by a bare client (the
    floor: every new user at once, then the room), alternating; our own work is the gap."""
    latency = 0.1
    print(
        f"creation: bandyer against a fake Kaleyra answering after {latency * 1000:.0f} ms",
        flush=True,
    )
    kaleyra_port = free_port()
    results: dict[str, Any] = {"provider_latency_ms": latency * 1000, "by_participants": {}}
    with process(  # the fake lives in the tests' support package, found from the root
        [PYTHON, str(ROOT / "bench" / "kaleyra.py"), str(kaleyra_port), str(latency)],
        env={"PYTHONPATH": str(ROOT)},
        cpu=LOAD_CPU,
    ):
        kaleyra_url = f"http://127.0.0.1:{kaleyra_port}"
        wait_for(f"{kaleyra_url}/-/alive")
        environ = {
            "VIDEO_PROVIDER": "bandyer",
            "BANDYER_BASE_URL": kaleyra_url,
            "BANDYER_API_SECRET_KEY": "bench-key",
        }
        with teleconsult(folder, **environ) as (base, _):
            for number in (2, 5, 10, 25):
                timings, floors = [], []
                for attempt in range(CREATIONS):
                    people = [person(f"n{number}-a{attempt}-doctor", "doctor")] + [
                        person(f"n{number}-a{attempt}-p{i}", "patient") for i in range(number - 1)
                    ]
                    started = time.perf_counter()
                    request(
                        "POST", f"{base}/teleconsultation", teleconsultation_body(people, number)
                    )
                    timings.append(time.perf_counter() - started)
                    floors.append(
                        provider_floor(kaleyra_url, f"floor-n{number}-a{attempt}", number)
                    )
                median, floor = statistics.median(timings), statistics.median(floors)
                results["by_participants"][str(number)] = {
                    "median_ms": median * 1000,
                    "max_ms": max(timings) * 1000,
                    "multiple_of_provider_latency": median / latency,
                    "floor_median_ms": floor * 1000,
                    "own_work_ms": (median - floor) * 1000,
                }
                print(
                    f"  N={number}: {median * 1000:.0f} ms, floor {floor * 1000:.0f} ms, "
                    f"own work {(median - floor) * 1000:.1f} ms",
                    flush=True,
                )
    return results


def provider_floor(kaleyra_url: str, prefix: str, number: int) -> float:
    """Seconds for the provider calls of one creation made by a bare client: `number` new
    users at once, then the room (the bodies the bandyer plugin sends)."""
    import aiohttp
    from teleconsult_bandyer import kaleyra

    from teleconsult.core.domain import TOOLS, RoomParticipant, RoomSpec

    users = [f"{prefix}-{i}" for i in range(number)]
    spec = RoomSpec(
        participants=tuple(RoomParticipant(user, i == 0, TOOLS) for i, user in enumerate(users)),
        duration_seconds=None,
        live=True,
        recording="none",
    )

    async def calls() -> float:
        async with aiohttp.ClientSession(headers={kaleyra.API_KEY_HEADER: "bench-key"}) as http:

            async def post(path: str, body: dict[str, Any]) -> None:
                async with http.post(kaleyra_url + path, json=body) as answer:
                    answer.raise_for_status()
                    await answer.read()

            started = time.perf_counter()
            await asyncio.gather(
                *(post(kaleyra.USERS, kaleyra.create_user_body(user, "plus")) for user in users)
            )
            await post(kaleyra.ROOMS, kaleyra.create_room_body(spec))
            return time.perf_counter() - started

    return asyncio.run(calls())


def size(folder: Path) -> dict[str, Any]:
    print(f"size: polling with 100 and 100,000 stored, {SIZE_SECONDS} s each", flush=True)
    results: dict[str, Any] = {}
    for stored in (100, 100_000):
        run = folder / f"size-{stored}"
        run.mkdir()
        with teleconsult(run) as (base, _):
            room = request(
                "POST",
                f"{base}/teleconsultation",
                teleconsultation_body(
                    [person("doctor-1", "doctor"), person("patient-1", "patient")], 2
                ),
            )["roomId"]
            seed_records(run / "bench.db", stored - 1)
            results[str(stored)] = wrk(
                f"{base}/teleconsultation/{room}", SIZE_SECONDS, {"miauserid": "doctor-1"}
            )
    results["p50_ratio"] = results["100000"]["p50_ms"] / results["100"]["p50_ms"]
    return results


LISTED = 20
"""The participant's own teleconsultations: one page (the default limit)."""


def listing(folder: Path) -> dict[str, Any]:
    print(f"listing: a participant's page with 100 and 100,000 stored, {SIZE_SECONDS} s each")
    results: dict[str, Any] = {}
    for stored in (100, 100_000):
        run = folder / f"listing-{stored}"
        run.mkdir()
        with teleconsult(run) as (base, _):
            seed_records(run / "bench.db", stored - LISTED)  # everyone else's
            seed_records(run / "bench.db", LISTED, participant="doctor-1")
            page = request("GET", f"{base}/teleconsultations", headers={"miauserid": "doctor-1"})
            if len(page["items"]) != LISTED:
                raise SystemExit(f"listing: expected {LISTED} items, got {len(page['items'])}")
            results[str(stored)] = wrk(
                f"{base}/teleconsultations", SIZE_SECONDS, {"miauserid": "doctor-1"}
            )
    results["p50_ratio"] = results["100000"]["p50_ms"] / results["100"]["p50_ms"]
    return results


def durability(folder: Path) -> dict[str, Any]:
    print("durability: creation with SQLITE_SYNCHRONOUS=full and normal", flush=True)
    results: dict[str, Any] = {"filesystem": filesystem(folder)}
    for mode in ("full", "normal"):
        run = folder / mode
        run.mkdir()
        with teleconsult(run, SQLITE_SYNCHRONOUS=mode, LOG_LEVEL="warn") as (base, _):
            people = [person("doctor-1", "doctor"), person("patient-1", "patient")]
            url = f"{base}/teleconsultation"
            timings = []
            for _ in range(50):
                started = time.perf_counter()
                request("POST", url, teleconsultation_body(people, 2))
                timings.append(time.perf_counter() - started)
            body = teleconsultation_body(people, 2)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=20) as pool:
                list(pool.map(request, ["POST"] * 200, [url] * 200, [body] * 200))
            concurrent = 200 / (time.perf_counter() - started)
        results[mode] = {
            "sequential_median_ms": statistics.median(timings) * 1000,
            "concurrent_creations_per_second": concurrent,
        }
        print(
            f"  {mode}: {results[mode]['sequential_median_ms']:.1f} ms, {concurrent:.0f}/s",
            flush=True,
        )
    return results


WAITERS = int(os.environ.get("BENCH_WAITERS", "2000"))
WEBHOOK_CHANGES = int(os.environ.get("BENCH_WEBHOOK_CHANGES", "500"))


def create_many(base: str, bodies: list[dict[str, Any]], workers: int = 20) -> list[str]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = pool.map(
            request, ["POST"] * len(bodies), [f"{base}/teleconsultation"] * len(bodies), bodies
        )
        return [answer["roomId"] for answer in answers]


def at(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def waiting(folder: Path) -> dict[str, Any]:
    print(f"waiting: {WAITERS} GET ?waitSeconds=30 held until one lock time", flush=True)
    people = [person("doctor-1", "doctor"), person("patient-1", "patient")]
    with teleconsult(folder, IMMUTABLE_PERIOD_MS="0") as (base, pid):
        lock = float(int(time.time() + WAITERS / 100 + 40))  # whole seconds, as start_date
        body = {
            **teleconsultation_body(people, 2),
            "start_date": at(lock),
            "end_date": at(lock + 3600),
        }
        ids = create_many(base, [body] * WAITERS)
        (folder / "ids.json").write_text(json.dumps(ids))
        idle_kib = rss_kib(pid, "VmRSS")
        out = folder / "delays.json"
        client = subprocess.Popen(
            [
                "taskset",
                "-c",
                LOAD_CPU,
                PYTHON,
                str(ROOT / "bench" / "waiters.py"),
                base,
                str(lock),
                str(folder / "ids.json"),
                str(out),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        client.stdout.readline()  # "held": every request sent
        time.sleep(5)  # every request reaches the server and waits
        window = max(1.0, min(10.0, lock - time.time() - 3))
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        cpu_share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
        waiting_kib = rss_kib(pid, "VmRSS")
        if time.time() > lock:
            print("  warning: the CPU window reached the lock time", flush=True)
        client.wait(timeout=lock - time.time() + 120)
        peak_kib = rss_kib(pid, "VmHWM")
    delays = json.loads(out.read_text())
    result = {
        "waiters": WAITERS,
        "cpu_window_seconds": window,
        "server_cpu_share_while_waiting": cpu_share,
        "delay_p50_ms": percentile(delays, 0.5) * 1000,
        "delay_p99_ms": percentile(delays, 0.99) * 1000,
        "delay_max_ms": max(delays) * 1000,
        "rss_idle_mib": idle_kib / 1024,
        "rss_while_waiting_mib": waiting_kib / 1024,
        "peak_rss_mib": peak_kib / 1024,
    }
    print(
        f"  p50 {result['delay_p50_ms']:.0f} ms, p99 {result['delay_p99_ms']:.0f} ms, "
        f"CPU {cpu_share * 100:.1f}% while waiting",
        flush=True,
    )
    return result


def webhooks(folder: Path) -> dict[str, Any]:
    print(
        f"webhooks: a backlog of {WEBHOOK_CHANGES} creations' events, then 20 creations/s",
        flush=True,
    )
    people = [person("doctor-1", "doctor"), person("patient-1", "patient")]
    body = teleconsultation_body(people, 2)
    port = free_port()
    secret = "whsec_" + "QmVuY2htYXJrIHNlY3JldCBvZiAzMiBieXRlcyEhISE="
    hooks = {
        "WEBHOOK_URL": f"http://127.0.0.1:{port}/hooks",
        "WEBHOOK_SECRET": secret,
        "LOG_LEVEL": "warn",
    }
    results: dict[str, Any] = {"changes": WEBHOOK_CHANGES}
    with process([PYTHON, str(ROOT / "bench" / "receiver.py"), str(port)], cpu=LOAD_CPU):
        wait_for(f"http://127.0.0.1:{port}/-/alive")
        received = f"http://127.0.0.1:{port}/-/received"
        # 1. Throughput: the events are written with delivery off, then a replica drains them.
        with teleconsult(folder, **hooks, WEBHOOK_POLL_INTERVAL_MS="0") as (base, _):
            create_many(base, [body] * WEBHOOK_CHANGES)
        backlog = (
            sqlite3.connect(folder / "bench.db")
            .execute("SELECT count(*) FROM teleconsult_webhook_deliveries WHERE status = 'pending'")
            .fetchone()[0]
        )
        with teleconsult(folder, **hooks):
            deadline = time.monotonic() + 300
            while len(request("GET", received)) < backlog and time.monotonic() < deadline:
                time.sleep(0.5)
        drained = request("GET", received)
        span = max(a[0] for a in drained) - min(a[0] for a in drained)
        results["backlog_deliveries"] = backlog
        results["deliveries_per_second"] = len(drained) / span if span else float(len(drained))
        # 2. Delay: the replica delivers while changes come at a steady rate.
        steady_folder = folder / "steady"
        steady_folder.mkdir()
        with teleconsult(steady_folder, **hooks) as (base, _):
            before = len(request("GET", received))
            for _ in range(10):
                started = time.monotonic()
                create_many(base, [body] * 20)
                time.sleep(max(0.0, 1 - (time.monotonic() - started)))
            expected = before + 200 * backlog // WEBHOOK_CHANGES  # as many events a creation
            deadline = time.monotonic() + 120
            while len(request("GET", received)) < expected and time.monotonic() < deadline:
                time.sleep(0.5)
            steady = request("GET", received)[before:]
        delays = [arrival - stamp for arrival, stamp, _ in steady]
        results["steady_deliveries"] = len(steady)
        results["delay_p50_ms"] = percentile(delays, 0.5) * 1000
        results["delay_p99_ms"] = percentile(delays, 0.99) * 1000
    print(
        f"  {results['deliveries_per_second']:.0f} deliveries/s; delay p50 "
        f"{results['delay_p50_ms']:.0f} ms, p99 {results['delay_p99_ms']:.0f} ms",
        flush=True,
    )
    return results


def signaling(folder: Path) -> dict[str, Any]:
    """bench/signaling.py's step (imported when it runs: it imports this module)."""
    import signaling as webrtc

    return webrtc.signaling(folder)


def filesystem(folder: Path) -> str:
    """The file system the database is on: on tmpfs an fsync costs nothing, which would lie."""
    output = subprocess.run(["df", "-T", str(folder)], capture_output=True, text=True).stdout
    return output.splitlines()[-1].split()[1]


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    wrk_version = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        .stdout.split("Copyright")[0]
        .strip()
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "wrk": wrk_version,
        "date": datetime.now(UTC).date().isoformat(),
    }


def table(results: dict[str, Any]) -> str:
    p, c, s = results["polling"], results["creation"], results["size"]
    sv, fl, ba = p["service"], p["floor"], p["bare_aiohttp"]
    low, high = p["ratio_to_floor_range"]
    rows = [
        (
            "Polling: requests/s, service vs same-work floor",
            f"{sv['requests_per_second']:.0f} vs {fl['requests_per_second']:.0f} "
            f"({p['ratio_to_floor']:.2f}x; rounds {low:.2f} to {high:.2f})",
            "at least 0.9x",
            p["ratio_to_floor"] >= 0.9,
        ),
        (
            "Polling: p99, service vs same-work floor",
            f"{sv['p99_ms']:.1f} vs {fl['p99_ms']:.1f} ms ({p['p99_ratio_to_floor']:.2f}x)",
            "at most 1.2x",
            p["p99_ratio_to_floor"] <= 1.2,
        ),
        (
            "Polling: CPU time a request, service vs floor",
            f"{sv['cpu_us_per_request']:.0f} vs {fl['cpu_us_per_request']:.0f} us "
            f"({p['cpu_ratio_to_floor']:.2f}x)",
            "",
            None,
        ),
        ("Polling: p50 / p99, service", f"{sv['p50_ms']:.1f} / {sv['p99_ms']:.1f} ms", "", None),
        ("Polling: p50 / p99, floor", f"{fl['p50_ms']:.1f} / {fl['p99_ms']:.1f} ms", "", None),
        (
            "Polling: requests/s, bare aiohttp (bytes from memory)",
            f"{ba['requests_per_second']:.0f} (service {p['ratio'] * 100:.0f}% of it); "
            f"p50 / p99 {ba['p50_ms']:.1f} / {ba['p99_ms']:.1f} ms",
            "",
            None,
        ),
    ]
    for number, timing in c["by_participants"].items():
        multiple = timing["multiple_of_provider_latency"]
        rows.append(
            (
                f"Creation, N={number}: median latency",
                f"{timing['median_ms']:.0f} ms = {multiple:.2f}x provider latency",
                "at most 2.1x",
                multiple <= 2.1,
            )
        )
        rows.append(
            (
                f"Creation, N={number}: own work (latency minus the provider floor)",
                f"{timing['median_ms']:.0f} - {timing['floor_median_ms']:.0f} ms = "
                f"{timing['own_work_ms']:.1f} ms",
                "at most 10 ms",
                timing["own_work_ms"] <= 10,
            )
        )
    rows.append(
        (
            "Size: polling p50 / p99, 100 stored",
            f"{s['100']['p50_ms']:.1f} / {s['100']['p99_ms']:.1f} ms",
            "",
            None,
        )
    )
    rows.append(
        (
            "Size: polling p50 / p99, 100,000 stored",
            f"{s['100000']['p50_ms']:.1f} / {s['100000']['p99_ms']:.1f} ms (p50 x{s['p50_ratio']:.2f})",
            "p50 within 1.2x",
            s["p50_ratio"] <= 1.2,
        )
    )
    listed = results.get("listing")
    if listed is not None:
        rows.append(
            (
                "Listing: a participant's page p50 / p99, 100 stored",
                f"{listed['100']['p50_ms']:.1f} / {listed['100']['p99_ms']:.1f} ms",
                "",
                None,
            )
        )
        rows.append(
            (
                "Listing: a participant's page p50 / p99, 100,000 stored",
                f"{listed['100000']['p50_ms']:.1f} / {listed['100000']['p99_ms']:.1f} ms "
                f"(p50 x{listed['p50_ratio']:.2f})",
                "p50 within 1.2x",
                listed["p50_ratio"] <= 1.2,
            )
        )
    m = p["memory"]
    rows.append(("Memory: RSS idle", f"{m['idle_rss_mib']:.0f} MiB", "", None))
    rows.append(
        (
            "Memory: peak RSS under the polling load",
            f"{m['peak_rss_under_load_mib']:.0f} MiB",
            "below 150 MB",
            m["peak_rss_under_load_mib"] * 1.048576 < 150,
        )
    )
    d = results.get("durability")
    if d is not None:
        for mode in ("full", "normal"):
            rows.append(
                (
                    f"Durability: creation with SQLITE_SYNCHRONOUS={mode} ({d['filesystem']})",
                    f"{d[mode]['sequential_median_ms']:.1f} ms median, "
                    f"{d[mode]['concurrent_creations_per_second']:.0f}/s at 20 concurrent",
                    "",
                    None,
                )
            )
    w = results.get("waiting")
    if w is not None:
        rows += [
            (
                f"Waiting room, {w['waiters']} GET ?waitSeconds=30: lock time to link, p50 / p99",
                f"{w['delay_p50_ms']:.0f} / {w['delay_p99_ms']:.0f} ms",
                "p99 under 1 s",
                w["delay_p99_ms"] < 1000,
            ),
            (
                "Waiting room: server CPU while they wait",
                f"{w['server_cpu_share_while_waiting'] * 100:.1f}% of a core",
                "under 5%",
                w["server_cpu_share_while_waiting"] < 0.05,
            ),
            (
                "Waiting room: server RSS idle / while they wait / peak",
                f"{w['rss_idle_mib']:.0f} / {w['rss_while_waiting_mib']:.0f} / {w['peak_rss_mib']:.0f} MiB",
                "",
                None,
            ),
        ]
    h = results.get("webhooks")
    if h is not None:
        rows += [
            (
                f"Webhooks: deliveries/s draining a backlog of {h['backlog_deliveries']}",
                f"{h['deliveries_per_second']:.0f}/s",
                "",
                None,
            ),
            (
                "Webhooks: change to delivery at 20 changes/s, p50 / p99",
                f"{h['delay_p50_ms']:.0f} / {h['delay_p99_ms']:.0f} ms",
                "",
                None,
            ),
        ]
    lines = ["| measure | result | goal | met |", "| --- | --- | --- | --- |"]
    for name, result, goal, met in rows:
        lines.append(
            f"| {name} | {result} | {goal} | {'' if met is None else ('yes' if met else 'NO')} |"
        )
    return "\n".join(lines)


def write_docs(results: dict[str, Any]) -> None:
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text() if doc.exists() else ""
    start, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    m = results["machine"]
    dates: dict[str, list[str]] = {}
    for name in ("polling", "creation", "size", "listing", "durability", "waiting", "webhooks"):
        if name not in results:
            continue
        measured = results[name].get("machine", m)["date"]
        dates.setdefault(measured, []).append(name)
    when = "; ".join(f"{', '.join(names)} on {date}" for date, names in sorted(dates.items()))
    block = f"{start}\nMeasured ({when}) on {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['wrk']} (`make bench`).\n\n{table(results)}\n{end}"
    if start in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    else:
        text = text + "\n" + block + "\n"
    doc.write_text(text)


def main() -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine()}
    only = set(sys.argv[1:])  # `python bench/run.py durability` runs one benchmark
    benchmarks = {
        "polling": polling,
        "creation": creation,
        "size": size,
        "listing": listing,
        "durability": durability,
        "waiting": waiting,
        "webhooks": webhooks,
        "signaling": signaling,
    }
    # On the project's own disk, not /tmp: a tmpfs would make fsync free.
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-") as folder:
        base = Path(folder)
        for name, bench in benchmarks.items():
            if only and name not in only:
                earlier = RESULTS / f"{name}.json"
                if earlier.exists():
                    results[name] = json.loads(earlier.read_text())
                continue
            (base / name).mkdir()
            results[name] = {"machine": results["machine"], **bench(base / name)}
            (RESULTS / f"{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
    if "signaling" in results:
        from signaling import write_docs as write_signaling  # it imports this module

        write_signaling(results["signaling"])
    if not only or "polling" in only:
        memory = {"machine": results["machine"], **results["polling"]["memory"]}
        (RESULTS / "memory.json").write_text(json.dumps(memory, indent=2) + "\n")
    write_docs(results)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
