"""An in-process Kaleyra Video server for tests and benchmarks.

It speaks the API of `kaleyra.py` (the working assumptions of kaleyra.md),
checks the `apikey` header, keeps users, rooms, uploads and backgrounds in
memory, records every request, and can be told to misbehave on any operation:
latency, an error status (429 with Retry-After, 5xx), a body that is not JSON or
not of the expected shape, or a delay long enough to time the client out.

    kaleyra = FakeKaleyra()
    server = await aiohttp_server(kaleyra.app())
    kaleyra.fail("create_room", Fault(status=500))
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from teleconsult_bandyer import events, kaleyra

from tests.fakes import drop

USER_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass
class Fault:
    """How the next matching request(s) misbehave."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    malformed: bool = False
    body: object = None
    """A 201 with this JSON body instead of the real answer (an answer of the wrong shape)."""
    message: str = "injected fault"
    """The error's message (a provider may echo what it was sent: a key, say)."""
    lost: bool = False
    """Carry the request out, then wait `delay` before answering: an answer that comes after
    the client's timeout when `delay` is longer."""
    dropped: bool = False
    """Carry the request out, then close the connection unanswered: an answer that never
    comes."""
    times: int = 1


@dataclass(frozen=True)
class Recorded:
    operation: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    api_key: str | None = field(repr=False)


class FakeKaleyra:
    def __init__(self, api_key: str = "test-api-key", latency: float = 0.0) -> None:
        self.api_key = api_key
        self.latency = latency
        self.room_answer = "v2"
        """The form of a room creation answer: "v2" (`id`, `participants[].link`, as assumed),
        "v1" (`room.room_id`, `room.user_urls`, as documented), "no_links" (an id only) or
        "no_id" (links only)."""
        self.duplicate_user = (409, "user already exists")
        """How an existing custom id is refused: Kaleyra does not document it."""
        self.page_size = 100
        """Files per page of a room's uploads; `limit` asks for fewer."""
        self.users: dict[str, str] = {}
        self.rooms: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, list[str]] = {}
        self.backgrounds: dict[str, dict[str, Any]] = {}
        self.company: dict[str, Any] = {"name": "fake company"}
        self.requests: list[Recorded] = []
        self.faults: dict[str, list[Fault]] = {}

    def signed_event(
        self, event: str, data: dict[str, Any], at: datetime, signed_at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body of a webhook Kaleyra would post for `event` (the envelope of
        kaleyra.md), signed with this fake's API key at `signed_at` (default `at`): post them
        to `/providers/bandyer/events`."""
        body = json.dumps(
            {
                "event": event,
                "event_version": "1.0",
                "namespace": "video",
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                "data": data,
            }
        ).encode()
        stamp = int((signed_at or at).timestamp())
        return {
            "content-type": "application/json",
            events.SIGNATURE_HEADER: events.sign(self.api_key, body, stamp),
        }, body

    def fail(self, operation: str, fault: Fault) -> None:
        self.faults.setdefault(operation, []).append(fault)

    def calls(self, operation: str) -> list[Recorded]:
        return [request for request in self.requests if request.operation == operation]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        routes = [
            ("POST", kaleyra.USERS, "create_user", self._create_user),
            ("GET", kaleyra.USERS, "list_users", self._list_users),
            ("POST", kaleyra.ROOMS, "create_room", self._create_room),
            ("GET", kaleyra.ROOM, "get_room", self._get_room),
            ("DELETE", kaleyra.ROOM, "delete_room", self._delete_room),
            ("POST", kaleyra.SDK_CREDENTIALS, "sdk_credentials", self._sdk_credentials),
            ("GET", kaleyra.UPLOADS, "list_uploads", self._list_uploads),
            ("DELETE", kaleyra.UPLOAD, "delete_upload", self._delete_upload),
            ("POST", kaleyra.VIRTUAL_BACKGROUNDS, "upload_background", self._upload_background),
            ("PUT", kaleyra.COMPANY, "set_background", self._set_background),
        ]
        for method, path, operation, handler in routes:
            app.router.add_route(method, path, self._wrap(operation, handler))
        return app

    def _wrap(self, operation: str, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            body: Any = None
            if request.content_type == "application/json" and request.can_read_body:
                body = await request.json()
            self.requests.append(
                Recorded(
                    operation, request.method, request.path, dict(request.query), body,
                    request.headers.get(kaleyra.API_KEY_HEADER),
                )
            )  # fmt: skip
            if self.latency:
                await asyncio.sleep(self.latency)
            if request.headers.get(kaleyra.API_KEY_HEADER) != self.api_key:
                return _error(401, "invalid api key")
            fault = self._take_fault(operation)
            if fault is not None and (fault.lost or fault.dropped):
                response = await handler(request)
                await asyncio.sleep(fault.delay)
                return drop(request) if fault.dropped else response
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                    return _error(fault.status, fault.message, headers)
                if fault.malformed:
                    return web.Response(status=200, text="<html>not json", content_type="text/html")
                if fault.body is not None:
                    return web.json_response(fault.body, status=201)
            return await handler(request)

        return wrapped

    def _take_fault(self, operation: str) -> Fault | None:
        queue = self.faults.get(operation)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    async def _create_user(self, request: web.Request) -> web.Response:
        body = await request.json()
        user_id = body.get(kaleyra.CUSTOM_USER_ID) or "u-" + secrets.token_hex(6)
        role = body.get(kaleyra.ROLE)
        if role not in ("basic", "plus") or not USER_ID.match(user_id):
            return _error(400, "invalid user")
        if user_id in self.users:
            return _error(*self.duplicate_user)
        self.users[user_id] = role
        return web.json_response({kaleyra.ID: user_id, kaleyra.ROLE: role}, status=201)

    async def _list_users(self, request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "100"))
        ids = sorted(self.users)[offset : offset + limit]
        return web.json_response(
            {
                "users": [{kaleyra.ID: user_id} for user_id in ids],
                "offset": offset,
                "limit": limit,
                "count": len(self.users),
                "has_more": offset + limit < len(self.users),
            }
        )

    async def _create_room(self, request: web.Request) -> web.Response:
        body = await request.json()
        participants = body.get(kaleyra.PARTICIPANTS)
        if not isinstance(participants, list) or not 2 <= len(participants) <= 25:
            return _error(400, "a room has 2 to 25 participants")
        unknown = [
            p.get(kaleyra.USER_ID) for p in participants if p.get(kaleyra.USER_ID) not in self.users
        ]
        if unknown:
            return _error(404, f"unknown users {unknown}")
        if not any(self.users[p[kaleyra.USER_ID]] == "plus" for p in participants):
            return _error(400, "a room needs a plus user")
        duration = body.get(kaleyra.DURATION)
        if duration is not None and (not isinstance(duration, int) or duration < 60):
            return _error(400, "duration must be at least 60 seconds")
        room_id = "room_" + secrets.token_hex(8)
        origin = f"{request.scheme}://{request.host}"
        links = [
            {
                kaleyra.USER_ID: p[kaleyra.USER_ID],
                kaleyra.IS_ADMIN: p.get(kaleyra.IS_ADMIN, False),
                kaleyra.LINK: f"{origin}/eu/direct-rest-call-handler/{secrets.token_urlsafe(16)}",
            }
            for p in participants
        ]
        self.rooms[room_id] = {
            "request": body,
            "details": {
                "recording": body.get(kaleyra.RECORDING, "none"),
                "recording_status": "stopped",
                "call_type": body.get(kaleyra.CALL_TYPE, "audio_video"),
                "description": body.get("description"),
                "status": "pending",
                "disabled": False,
                "creation_date": datetime.now(UTC).isoformat(),
                "duration": duration,
                "duration_used": 0,
                "live": body.get(kaleyra.LIVE, False),
            },
        }
        self.uploads[room_id] = []
        return web.json_response(self._room_answer(room_id, links), status=201)

    def _room_answer(self, room_id: str, links: list[dict[str, Any]]) -> dict[str, Any]:
        if self.room_answer == "v1":
            urls = [{"user": p[kaleyra.USER_ID], "url": p[kaleyra.LINK]} for p in links]
            return {"room": {"room_id": room_id, "user_urls": urls}}
        if self.room_answer == "no_links":
            return {kaleyra.ID: room_id}
        if self.room_answer == "no_id":
            return {"room_identifier": room_id, kaleyra.PARTICIPANTS: links}
        return {kaleyra.ID: room_id, kaleyra.PARTICIPANTS: links}

    async def _get_room(self, request: web.Request) -> web.Response:
        room = self.rooms.get(request.match_info["room_id"])
        if room is None:
            return _error(404, "room not found")
        return web.json_response({kaleyra.ID: request.match_info["room_id"], **room["details"]})

    async def _delete_room(self, request: web.Request) -> web.Response:
        if self.rooms.pop(request.match_info["room_id"], None) is None:
            return _error(404, "room not found")
        return web.Response(status=204)

    async def _sdk_credentials(self, request: web.Request) -> web.Response:
        body = await request.json()
        user_id = body.get(kaleyra.USER_ID)
        expires_in = body.get(kaleyra.EXPIRES_IN)
        if user_id not in self.users:
            return _error(404, "user not found")
        if not isinstance(expires_in, int) or not 360 <= expires_in <= 86400:
            return _error(400, "expires_in must be 360 to 86400 seconds")
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        return web.json_response(
            {
                kaleyra.ACCESS_TOKEN: "token_" + secrets.token_urlsafe(24),
                kaleyra.EXPIRES_AT: expires_at.isoformat(),
                kaleyra.USER_ID: user_id,
            },
            status=201,
        )

    async def _list_uploads(self, request: web.Request) -> web.Response:
        keys = self.uploads.get(request.query.get(kaleyra.ROOM_ID_QUERY, ""), [])
        offset = int(request.query.get("offset", "0"))
        limit = min(int(request.query.get("limit", "100")), self.page_size)
        page = keys[offset : offset + limit]
        return web.json_response(
            {
                kaleyra.UPLOAD_LIST: [{kaleyra.UPLOAD_KEY: key} for key in page],
                "offset": offset,
                "limit": limit,
                "has_more": offset + limit < len(keys),
            }
        )

    async def _delete_upload(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        for keys in self.uploads.values():
            if key in keys:
                keys.remove(key)
                return web.Response(status=204)
        return _error(404, "file not found")

    async def _upload_background(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get(kaleyra.VIRTUAL_BACKGROUND_FIELD)
        if not isinstance(upload, web.FileField):
            return _error(400, "virtual_background is required")
        alias = "bg_" + secrets.token_hex(4)
        background = {
            kaleyra.BACKGROUND_ALIAS: alias,
            "url": f"https://backgrounds.example/{alias}.jpg",
            "creation_date": datetime.now(UTC).isoformat(),
        }
        self.backgrounds[alias] = background
        return web.json_response(background, status=201)

    async def _set_background(self, request: web.Request) -> web.Response:
        body = await request.json()
        alias = body.get(kaleyra.DEFAULT_BACKGROUND)
        if alias not in self.backgrounds:
            return _error(404, "background not found")
        self.company[kaleyra.DEFAULT_BACKGROUND] = alias
        return web.json_response(self.company)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message}, status=status, headers=headers)
