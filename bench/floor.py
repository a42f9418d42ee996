"""The same-work floor: a poll's work and nothing else, for `make bench` to compare with.

A minimal aiohttp app answering GET /teleconsultation/{roomId} as teleconsult does: the
caller from the `miauserid` header, the record read by primary key from the SQLite file
the service wrote (at every request: nothing is cached), the caller's participant, the
link once the room is locked (the fake provider's: the stored link with the language),
the hand-out's audit entry written before the answer (the service's table and file, so its
fsync too; entries arriving while a write is under way share the next one), the same JSON
body byte for byte, one Prometheus counter and one histogram, and one JSON log line per
request at info. What it leaves out (the request id's checks, CORS, error
bodies, redaction, the authenticator's rules) is what teleconsult's own layers cost.

Usage: floor.py PORT DATABASE DETAILS_JSON IMMUTABLE_PERIOD_SECONDS
(DETAILS_JSON: the provider's description of rooms, {providerRoomId: details}, which the
service keeps in memory too.)
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import socket
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from yarl import URL

log = logging.getLogger("floor.http")


class Line(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "level": 30,
            "time": int(record.created * 1000),
            "pid": record.process,
            "hostname": HOSTNAME,
            "logger": record.name,
            **record.fields,  # type: ignore[attr-defined]
            "msg": record.getMessage(),
        }
        return json.dumps(line)


HOSTNAME = socket.gethostname()


def compact(body: object) -> str:
    """The service's answers are compact JSON in UTF-8 (it writes them with orjson)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def main() -> None:
    port, database, details = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    immutable = timedelta(seconds=float(sys.argv[4]))
    reader = sqlite3.connect(database, isolation_level=None)
    reader.execute("PRAGMA query_only = 1")
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA synchronous = FULL")
    waiting: list[tuple[tuple[object, ...], asyncio.Future[None]]] = []
    writing: list[asyncio.Task[None]] = []

    def insert(rows: list[tuple[object, ...]]) -> None:
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany(
            "INSERT INTO teleconsult_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        writer.execute("COMMIT")

    async def write_waiting() -> None:
        while waiting:
            batch = waiting[:]
            del waiting[:]
            await asyncio.to_thread(insert, [row for row, _ in batch])
            for _, written in batch:
                written.set_result(None)

    async def audit(row: tuple[object, ...]) -> None:
        written = asyncio.get_running_loop().create_future()
        waiting.append((row, written))
        if not writing or writing[0].done():
            writing[:] = [asyncio.create_task(write_waiting())]
        await written

    registry = CollectorRegistry()
    requests = Counter("http_requests", "", ["method", "route", "status"], registry=registry)
    duration = Histogram("http_duration", "", ["method", "route"], registry=registry)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(Line())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    route = "/teleconsultation/{roomId}"

    async def poll(request: web.Request) -> web.Response:
        started = time.perf_counter()
        request_id = secrets.token_hex(16)
        caller = request.headers.get("miauserid")
        room_id = request.match_info["roomId"]
        row = reader.execute(
            'SELECT document FROM "teleconsultations" WHERE id = ? AND state = ?',
            (room_id, "PUBLIC"),
        ).fetchone()
        if row is None:
            raise web.HTTPNotFound()
        record = json.loads(row[0])
        me = next((p for p in record["participants"] if p["userExternalId"] == caller), None)
        if me is None:
            raise web.HTTPUnauthorized()
        room, link = record["room"], None
        locked = datetime.fromisoformat(record["startDate"]) - immutable <= datetime.now(UTC)
        if room and locked and len(record["participants"]) == record["participantsNumber"]:
            stored = room["links"][me["providerUserId"]]
            link = str(URL(stored).update_query({"l": me["language"]}))
            row = (
                secrets.token_hex(12), room_id, time.time_ns() // 1000, "link_handed_out",
                caller, caller, "[]", request_id, request.remote,
                request.headers.get("User-Agent"),
            )  # fmt: skip
            await audit(row)
        body = {
            "bandyerUserId": me["providerUserId"],
            "accessLinkURL": link,
            "participantsBandyerCall": [
                {"bandyerUserId": p["providerUserId"], "fullName": p["fullName"]}
                for p in record["participants"]
            ],
        }
        if record["providerRoomId"] in details:
            body["details"] = details[record["providerRoomId"]]
        response = web.json_response(body, headers={"Cache-Control": "no-store"}, dumps=compact)
        elapsed = time.perf_counter() - started
        requests.labels("GET", route, "200").inc()
        duration.labels("GET", route).observe(elapsed)
        fields = {
            "reqId": request_id,
            "callerId": caller,
            "req": {"method": "GET", "url": request.path, "route": route},
            "res": {"statusCode": 200},
            "responseTime": round(elapsed * 1000, 1),
        }
        log.info("request completed", extra={"fields": fields})
        return response

    app = web.Application()
    app.router.add_get(route, poll)
    gc.collect()
    gc.freeze()  # as `teleconsult serve` does once started
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
