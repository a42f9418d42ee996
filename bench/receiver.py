"""A webhook receiver for the benchmarks: notes when each delivery arrived, answers 204.

    python bench/receiver.py <port>

`GET /-/received` answers every arrival as [arrival Unix time, the event's timestamp,
webhook-id]. It does not verify signatures (the tests do): it measures the sender.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

from aiohttp import web

arrivals: list[list[Any]] = []


async def receive(request: web.Request) -> web.Response:
    body = await request.json()
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
    arrivals.append([time.time(), stamp, request.headers.get("webhook-id")])
    return web.Response(status=204)


async def received(request: web.Request) -> web.Response:
    return web.json_response(arrivals)


async def alive(request: web.Request) -> web.Response:
    return web.Response(text="ok")


app = web.Application()
app.router.add_post("/hooks", receive)
app.router.add_get("/-/received", received)
app.router.add_get("/-/alive", alive)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
