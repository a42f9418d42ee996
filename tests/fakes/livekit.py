"""An in-process LiveKit RoomService for tests and benchmarks.

It speaks Twirp as livekit-server does, at `/twirp/livekit.RoomService/<Method>`:
request bodies in binary protobuf (what the SDK sends) or JSON, answers in the same
encoding, errors as Twirp JSON (`{"code", "msg"}`). It verifies the `Authorization`
token of every call with the SDK's own `TokenVerifier` and the grant each method needs
(CreateRoom and DeleteRoom `roomCreate`, ListRooms `roomList`, ListParticipants and
RemoveParticipant `roomAdmin` for that room), as livekit-server does. CreateRoom on an existing name
answers the existing room; DeleteRoom of an unknown room is a 404 `not_found`.

`join(token)` does what the server does when a participant connects: it verifies the
participant's token (signature, issuer, `nbf`/`exp` with the SDK's leeway), requires
`roomJoin` for a room, creates the room if it is missing (LiveKit's `auto_create`) and
adds the participant. Every call is recorded, and any method can be made to misbehave:

    livekit = FakeLiveKit()
    server = await aiohttp_server(livekit.app())
    livekit.fail("CreateRoom", Fault(status=500))
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.protocol import models
from livekit.protocol import room as room_pb

from tests.fakes import drop

PATH = "/twirp/livekit.RoomService/{method}"
PROTOBUF = "application/protobuf"
JSON = "application/json"
API_KEY = "fake-livekit-key"
API_SECRET = "fake-livekit-secret-of-at-least-32-characters"


@dataclass
class Fault:
    """How the next matching call(s) misbehave."""

    status: int | None = None
    """Answer this HTTP status with a Twirp error (`code`, `message`)."""
    code: str = "internal"
    message: str = "injected fault"
    delay: float = 0.0
    """Wait this long before carrying the call out."""
    lost: bool = False
    """Carry the call out, then wait `delay` before answering: an answer that comes after the
    client's timeout when `delay` is longer."""
    dropped: bool = False
    """Carry the call out, then drop the connection unanswered: an answer that never comes."""
    malformed: bool = False
    """A 200 whose body is not a protobuf message."""
    disconnect: bool = False
    """Drop the connection without answering."""
    times: int = 1
    """How many calls in a row it spoils."""


@dataclass(frozen=True)
class Call:
    method: str
    request: Message
    identity: str
    """Who the call's token names (the SDK leaves `sub` empty for service calls)."""
    content_type: str


@dataclass(frozen=True)
class _Method:
    request: type[Message]
    handle: Callable[[Any], Message | web.Response]
    grant: Callable[[api.VideoGrants, Any], bool]


class FakeLiveKit:
    def __init__(self, api_key: str = API_KEY, api_secret: str = API_SECRET) -> None:
        self.api_key = api_key
        self.verifier = api.TokenVerifier(api_key, api_secret)
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, dict[str, models.ParticipantInfo]] = {}
        self.calls: list[Call] = []
        self.faults: dict[str, deque[Fault]] = {}
        """Per method, the fault each of its next calls meets, one entry a call."""
        self.methods = {
            "CreateRoom": _Method(
                room_pb.CreateRoomRequest, self._create_room, lambda v, _: bool(v.room_create)
            ),
            "DeleteRoom": _Method(
                room_pb.DeleteRoomRequest, self._delete_room, lambda v, _: bool(v.room_create)
            ),
            "ListRooms": _Method(
                room_pb.ListRoomsRequest, self._list_rooms, lambda v, _: bool(v.room_list)
            ),
            "ListParticipants": _Method(
                room_pb.ListParticipantsRequest,
                self._list_participants,
                lambda v, request: bool(v.room_admin) and v.room == request.room,
            ),
            "RemoveParticipant": _Method(
                room_pb.RoomParticipantIdentity,
                self._remove_participant,
                lambda v, request: bool(v.room_admin) and v.room == request.room,
            ),
        }

    def fail(self, method: str, fault: Fault) -> None:
        self.faults.setdefault(method, deque()).extend([fault] * fault.times)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(PATH, self._handle)
        return app

    # -- Twirp ------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = self.methods.get(request.match_info["method"])
        if method is None:
            return _error(404, "bad_route", f"no handler for path {request.path}")
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "unauthenticated", "invalid authorization header")
        try:
            claims = self.verifier.verify(auth.removeprefix("Bearer "))
        except Exception as error:  # every PyJWT error, as the server answers them all
            return _error(401, "unauthenticated", f"invalid token: {type(error).__name__}")
        content_type = request.content_type
        try:
            message = _decode(method.request, content_type, await request.read())
        except (DecodeError, json_format.ParseError, ValueError):
            return _error(400, "malformed", "the request body cannot be read")
        if claims.video is None or not method.grant(claims.video, message):
            return _error(401, "unauthenticated", "permissions denied")
        name = request.match_info["method"]
        self.calls.append(Call(name, message, claims.identity, content_type))
        queue = self.faults.get(name)
        fault = queue.popleft() if queue else None
        if fault is not None and not fault.lost:
            await asyncio.sleep(fault.delay)
            answer = _misbehave(request, fault)
            if answer is not None:
                return answer
        result = method.handle(message)
        if fault is not None and fault.lost:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.dropped:
            return drop(request)
        if isinstance(result, web.Response):
            return result
        if content_type == JSON:
            return web.Response(text=json_format.MessageToJson(result), content_type=JSON)
        return web.Response(body=result.SerializeToString(), content_type=PROTOBUF)

    # -- RoomService --------------------------------------------------------------------------

    def _create_room(self, request: room_pb.CreateRoomRequest) -> models.Room | web.Response:
        """As livekit-server's room allocator: the room of that name if there is one, else a
        new one; then the request's non-zero settings."""
        if not request.name:
            return _error(400, "invalid_argument", "room name is required")
        room = self.rooms.get(request.name) or self._new_room(request.name)
        if request.max_participants:
            room.max_participants = request.max_participants
        if request.empty_timeout:
            room.empty_timeout = request.empty_timeout
        if request.metadata:
            room.metadata = request.metadata
        return room

    def _new_room(self, name: str) -> models.Room:
        now = time.time()
        room = models.Room(
            sid="RM_" + secrets.token_urlsafe(9),
            name=name,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            empty_timeout=300,
            departure_timeout=20,
        )
        self.rooms[name] = room
        self.participants[name] = {}
        return room

    def _delete_room(self, request: room_pb.DeleteRoomRequest) -> Message | web.Response:
        if self.rooms.pop(request.room, None) is None:
            return _error(404, "not_found", "room not found")
        self.participants.pop(request.room, None)  # everyone is disconnected
        return room_pb.DeleteRoomResponse()

    def _list_rooms(self, request: room_pb.ListRoomsRequest) -> Message:
        names = set(request.names)
        rooms = [room for name, room in self.rooms.items() if not names or name in names]
        for room in rooms:
            room.num_participants = len(self.participants.get(room.name, {}))
        return room_pb.ListRoomsResponse(rooms=rooms)

    def _list_participants(self, request: room_pb.ListParticipantsRequest) -> Message:
        members = self.participants.get(request.room, {})
        return room_pb.ListParticipantsResponse(participants=list(members.values()))

    def _remove_participant(
        self, request: room_pb.RoomParticipantIdentity
    ) -> Message | web.Response:
        """As livekit-server: the participant is disconnected; an unknown one is `not_found`."""
        if self.participants.get(request.room, {}).pop(request.identity, None) is None:
            return _error(404, "not_found", "participant not found")
        return room_pb.RemoveParticipantResponse()

    # -- participants' connections --------------------------------------------------------------

    def join(self, token: str) -> models.ParticipantInfo:
        """Connect with a participant's token, as a LiveKit client does. Raises the PyJWT
        error of a token the server would refuse, PermissionError for a missing grant."""
        claims = self.verifier.verify(token)
        grants = claims.video
        if grants is None or not grants.room_join or not grants.room:
            raise PermissionError("the token grants no room to join")
        room = self.rooms.get(grants.room) or self._new_room(grants.room)
        members = self.participants[room.name]
        full = room.max_participants and len(members) >= room.max_participants
        if full and claims.identity not in members:
            raise PermissionError("the room is full")
        member = models.ParticipantInfo(
            sid="PA_" + secrets.token_urlsafe(9),
            identity=claims.identity,
            name=claims.name,
            state=models.ParticipantInfo.ACTIVE,
            joined_at=int(time.time()),
        )
        members[claims.identity] = member
        return member


def _decode(kind: type[Message], content_type: str, body: bytes) -> Message:
    if content_type == PROTOBUF:
        return kind.FromString(body)
    if content_type == JSON:
        return json_format.Parse(body.decode() or "{}", kind(), ignore_unknown_fields=True)
    raise ValueError(content_type)


def _misbehave(request: web.Request, fault: Fault) -> web.Response | None:
    if fault.disconnect:
        return drop(request)
    if fault.status is not None:
        return _error(fault.status, fault.code, fault.message)
    if fault.malformed:
        return web.Response(body=b"<html>not protobuf", content_type=PROTOBUF)
    return None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "msg": message}, status=status)
