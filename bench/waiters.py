"""The waiting room's participants: one `GET ?waitSeconds=30` loop per teleconsultation.

    python bench/waiters.py <base url> <lock time, Unix seconds> <ids file> <results file>

Each participant asks until its link comes (a null answer after 30 s: ask again) and
notes when the answer with the link arrived; the results file gets, per participant, the
seconds from the lock time to that answer. "held" is printed once every request is sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp


async def participant(session: aiohttp.ClientSession, url: str) -> float:
    while True:
        async with session.get(url, params={"waitSeconds": "30"}) as response:
            body = await response.json()
        if response.status != 200:
            raise SystemExit(f"{url}: {response.status} {body}")
        if body["accessLinkURL"] is not None:
            return time.time()


async def main(base: str, lock_at: float, ids: list[str]) -> list[float]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"miauserid": "doctor-1"}
    ) as session:
        tasks = [
            asyncio.create_task(participant(session, f"{base}/teleconsultation/{room}"))
            for room in ids
        ]
        await asyncio.sleep(0)
        print("held", flush=True)
        answered = await asyncio.gather(*tasks)
    return [at - lock_at for at in answered]


if __name__ == "__main__":
    base_url, lock, ids_file, out = sys.argv[1:5]
    delays = asyncio.run(main(base_url, float(lock), json.loads(Path(ids_file).read_text())))
    Path(out).write_text(json.dumps(delays))
