"""CPU and memory of Janus and of the service for one consultation of 2, 4 and 8 participants.

`python bench/janus.py` (as root: it makes a network namespace). Janus runs as the tests run
it (`tests/janus_server.py`), the service as `teleconsult serve` on the host's end of the
veth pair, and each participant is a Chromium page in the namespace (the fake camera, 640x480)
that publishes once and receives every other through Janus. Once every page decodes video
from all the others, the CPU time of Janus and of the service is sampled over
BENCH_JANUS_SECONDS (10), with their resident memory. Chromium's own CPU is not counted (on a
2-core machine it dominates: the numbers say what Janus and the service cost, not the pages).
Results: bench/results/janus.json; the table is in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, async_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run import cpu_seconds, rss_kib  # noqa: E402  (bench/run.py, beside this file)

from tests.janus_server import (  # noqa: E402
    JanusServer,
    chromium_wrapper,
    free_port_at,
    network_namespace,
)

SIZES = (2, 4, 8)
SECONDS = float(os.environ.get("BENCH_JANUS_SECONDS", "10"))
RESULTS = ROOT / "bench" / "results" / "janus.json"


async def start_service(janus: JanusServer, folder: Path) -> tuple[asyncio.subprocess.Process, str]:
    address = janus.namespace.host_address
    port = free_port_at(address)
    environ = {
        **os.environ,
        **janus.environ(JANUS_ALLOW_PLAIN_HTTP="true", JANUS_PAGE_URL=f"http://{address}:{port}"),
        "STORE_URL": f"sqlite:///{folder / 'bench.db'}",
        "HTTP_HOST": address,
        "HTTP_PORT": str(port),
        "ALLOW_ANONYMOUS_WRITES": "true",
        "IMMUTABLE_PERIOD_MS": "600000",
        "CALL_PAGE_LOBBY": "false",
        "LOG_LEVEL": "warn",
    }
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "teleconsult", "serve", env=environ
    )
    url = f"http://{address}:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url + "/-/healthz") as answer:
                    if answer.status == 200:
                        return service, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the service did not start")


async def links_for(url: str, size: int) -> list[str]:
    start = datetime.now(UTC) + timedelta(minutes=5)
    people: list[dict[str, Any]] = [
        {"userExternalId": f"p{i}", "groups": ["doctor" if i == 0 else "patient"],
         "fullName": f"Person {i}", "language": "en"}
        for i in range(size)
    ]  # fmt: skip
    body = {
        "participants": {"number": size, "data": people},
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(minutes=30)).isoformat(),
    }
    async with aiohttp.ClientSession(url) as session:
        created = await (await session.post("/teleconsultation", json=body)).json()
        links = []
        for person in people:
            answer = await session.get(
                f"/teleconsultation/{created['roomId']}",
                headers={"miauserid": str(person["userExternalId"])},
            )
            links.append((await answer.json())["accessLinkURL"])
        return links


async def all_receiving(browser: Browser, links: list[str]) -> list[Any]:
    contexts = []
    for link in links:
        context = await browser.new_context(permissions=["camera", "microphone"])
        page = await context.new_page()
        await page.goto(link)
        await page.locator("#join").click()
        contexts.append((context, page))
    deadline = time.monotonic() + 180  # 8 pages decode 56 streams on few cores
    for _, page in contexts:
        while True:
            frames = await page.evaluate("window.__call.videoFramesDecoded()")
            if len(frames) == len(links) - 1 and all(n > 10 for n in frames.values()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every page receives video: {frames}")
            await asyncio.sleep(0.2)
    return contexts


async def measure(size: int) -> dict[str, Any]:
    with network_namespace() as namespace, tempfile.TemporaryDirectory() as folder:
        janus = JanusServer(namespace, Path(folder), "http://127.0.0.1:9/unused")
        janus.start()
        service, url = await start_service(janus, Path(folder))
        try:
            args = [
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--unsafely-treat-insecure-origin-as-secure={url}",
            ]
            executable = chromium_wrapper(Path(folder), namespace, "/usr/bin/chromium")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=executable, args=args)
                contexts = await all_receiving(browser, await links_for(url, size))
                assert janus.process is not None
                pids = {"janus": janus.process.pid, "service": service.pid}
                before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                await asyncio.sleep(SECONDS)
                result: dict[str, Any] = {"participants": size}
                for name, pid in pids.items():
                    share = (cpu_seconds(pid) - before[name]) / SECONDS
                    result[f"{name}_cpu_percent"] = round(share * 100, 1)
                    result[f"{name}_rss_mib"] = round(rss_kib(pid, "VmRSS") / 1024, 1)
                for context, _ in contexts:
                    await context.close()
                await browser.close()
            return result
        finally:
            service.terminate()
            await service.wait()
            janus.stop()


async def main() -> None:
    results = [await measure(size) for size in SIZES]
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print("| participants | Janus CPU | Janus RSS | service CPU | service RSS |")
    for r in results:
        print(
            f"| {r['participants']} | {r['janus_cpu_percent']}% | {r['janus_rss_mib']} MiB | "
            f"{r['service_cpu_percent']}% | {r['service_rss_mib']} MiB |"
        )


if __name__ == "__main__":
    asyncio.run(main())
