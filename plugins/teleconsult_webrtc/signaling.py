"""Signaling: one WebSocket per participant's page, relayed through the store's mailboxes.

The browser protocol (JSON text frames):

| direction | `type` | fields | meaning |
| --- | --- | --- | --- |
| page -> server | `join` | `resume` (optional) | the first message, within 10 s |
| server -> page | `resumed` | as `joined` | `resume` named this page's seat: same id, nobody told |
| server -> page | `joined` | `self{id,name,isAdmin}`, `peers[...]`, `waiting[...]` | in |
| server -> page | `waiting` | `self{id,name,isAdmin}` | in the lobby: nothing relayed |
| server -> page | `knock`, `knock-withdrawn` | `peer{id,name,since}` / `id` | plus pages |
| page -> server | `admit`, `decline` | `peer` | a plus page decides on a waiting one |
| server -> page | `declined` | | refused; then 4003 |
| server -> page | `peer-joined` | `peer{id,name,isAdmin}` | someone arrived: wait for their offer |
| server -> page | `peer-left` | `id` | close that peer connection |
| both ways | `offer`, `answer` | `to` / `from`, `sdp` | relayed; the server sets `from` |
| both ways | `candidate` | `to` / `from`, `candidate` | rebuilt from its known fields |
| both ways | `media` | `from`, `audio`, `video` | microphone and camera on or off: to every peer |
| both ways | `chat` | `from`, `text` | `chat` tool only: to every seated peer, never kept |
| both ways | `screen` | `from`, `sharing` | with the `screen_sharing` tool only: sharing or not |
| both ways | `video-paused` | `to` / `from`, `paused` | no video to that peer: a weak link |
| page -> server | `end` | | the admin ends the call for everyone |
| server -> page | `ended` | `reason` | over (`ended_by_host`, `cancelled`, `expired`): 4000 |

`joined` lists `waiting` only with the lobby (CALL_PAGE_LOBBY); the newcomer offers to each
of `peers`. Peers are named by a per-connection id, never by participant: an answer meant for a
closed connection cannot reach its successor. The newcomer offers to everyone
already there and the others only answer, so two pages never offer to each other.

Across replicas: a message for a peer is posted to that peer's mailbox in the
store; the replica serving the peer takes its mailbox every poll interval while
the peer is connected (`Connection.pump`), and writes a heartbeat to the room
every heartbeat interval. Nothing about other peers is kept in memory but the
ids this connection was told about (to drop messages for strangers).

A malformed message closes only its own connection, with a reason: 1008 (policy),
1009 (over 64 KiB); a store failure 1011; the page reconnects after 1001, 1006,
1011, 1012 and 1013. A replica that stops closes with 1001 and keeps the seats: the pages
`resume` them, as the same peers, on any replica (resume.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp import WSCloseCode, WSMsgType, web

from teleconsult.plugin import ServiceError

from .lobby import decide
from .messages import HARD_MAX_MESSAGE_BYTES as HARD_MAX_MESSAGE_BYTES
from .messages import (
    MAX_ID_CHARS,
    ProtocolError,
    ice_candidate,
    parse_message,
    text_field,
    to_everyone,
    video_paused,
    violation,
)
from .messages import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES
from .resume import Resumed
from .rooms import Joined, Knock, Peer, Refused, Rooms, Waiting

log = logging.getLogger("teleconsult.webrtc")

JOIN_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 5.0
PING_SECONDS = 20.0
MAX_PENDING = 256
RATE_BURST = 200.0
RATE_PER_SECOND = 50.0

RELAYED = ("offer", "answer", "candidate", "media", "chat", "screen", "video-paused")

CALL_ENDED = 4000
ROOM_FULL = 4001
REPLACED = 4002
DECLINED = 4003


@dataclass(frozen=True)
class Member:
    """A participant as the page shows them: name and role, from the roster."""

    name: str
    is_admin: bool
    tools: frozenset[str] = frozenset()
    """The in-call tools the participant's level enables."""


@dataclass(frozen=True)
class Timing:
    poll_seconds: float
    heartbeat_seconds: float


class _Close(NamedTuple):
    code: int
    reason: str


class Connection:
    """One participant's WebSocket: its own mailbox, heartbeat and outgoing queue.

    Outgoing frames go through a queue drained by one writer task: the pump and the
    reader never wait on a slow browser, and order is kept (`ended` goes before the
    close).
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        rooms: Rooms,
        room_id: str,
        user: str,
        members: Mapping[str, Member],
        timing: Timing,
        registry: set[Connection],
        expires_at: int,
        generation: int = 0,
    ) -> None:
        self.id = secrets.token_urlsafe(12)
        self.ws = ws
        self.rooms = rooms
        self.room_id = room_id
        self.user = user
        self.members = members
        self.timing = timing
        self.expires_at = expires_at
        """When the link's window closes (epoch seconds): the connection ends then too."""
        self.generation = generation
        """The link generation of its credential: a revocation of it ends the connection."""
        self.peers: dict[str, str] = {}
        """The other peers this connection was told about: peer id -> provider user id."""
        self.joined = False
        self.waiting = False
        """In the lobby: nothing is relayed to or from this page until a plus participant
        admits it (the page hears `admitted` through its mailbox)."""
        self.gone = False
        """The room no longer lists this peer (ended, replaced, evicted): no leave to write."""
        self.keeps_seat = False
        """Closed as the replica stops: no leave, the page resumes its seat elsewhere."""
        self.registry = registry
        """The provider's open connections: it closes them, and waits for them, as it stops."""
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the connection left its room and closed."""
        self._outbox: asyncio.Queue[str | _Close] = asyncio.Queue()
        self._closing = False
        self._allowance = RATE_BURST
        self._refilled = time.monotonic()

    async def serve(self) -> None:
        """Run the connection until it closes; always leaves the room it joined, even when
        the handler is cancelled (the browser went away, the server stops)."""
        writer = asyncio.create_task(self._write())
        pump: asyncio.Task[None] | None = None
        close = _Close(WSCloseCode.OK, "")
        self.registry.add(self)
        try:
            if await self._join():
                pump = asyncio.create_task(self._pump())
                await self._read()
        except ProtocolError as error:
            log.info("webrtc: closed a connection: %d %s", error.code, error.reason)
            close = _Close(error.code, error.reason)
        except ServiceError as error:
            log.warning("webrtc: signaling failed: %s", error.message)
            close = _Close(WSCloseCode.INTERNAL_ERROR, "signaling unavailable; reconnect")
        except Exception:
            log.exception("webrtc: signaling failed unexpectedly")
            close = _Close(WSCloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await asyncio.shield(asyncio.ensure_future(self._finish(pump, writer, close)))

    async def _finish(
        self, pump: asyncio.Task[None] | None, writer: asyncio.Task[None], close: _Close
    ) -> None:
        """Stop taking the mailbox, leave the room (the others are told), then close."""
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        await self._leave()
        self.close(*close)
        try:
            await asyncio.wait_for(writer, CLOSE_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError):
            writer.cancel()
        finally:
            self.registry.discard(self)
            self.finished.set_result(None)

    def send(self, message: Mapping[str, object]) -> None:
        if self._closing:
            return
        if self._outbox.qsize() >= MAX_PENDING:
            self.close(WSCloseCode.TRY_AGAIN_LATER, "receiver too slow")
            return
        self._outbox.put_nowait(json.dumps(message, separators=(",", ":")))

    def close(self, code: int, reason: str) -> None:
        """Queue a close frame after what is already queued (once)."""
        if self._closing:
            return
        self._closing = True
        self._outbox.put_nowait(_Close(code, reason.encode()[:123].decode(errors="ignore")))

    def end(self, reason: str) -> None:
        """The call is over for this connection: say so, then close."""
        self.gone = True
        self.send({"type": "ended", "reason": reason})
        self.close(CALL_ENDED, "call ended")

    # -- the steps -----------------------------------------------------------------------------

    async def _join(self) -> bool:
        try:
            first = await self.ws.receive(timeout=JOIN_TIMEOUT_SECONDS)
        except TimeoutError:
            raise violation("join timeout") from None
        if first.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return False
        message = parse_message(first)
        if message["type"] != "join":
            raise violation("expected 'join'")
        if "resume" in message and await self._resume(text_field(message, "resume", MAX_ID_CHARS)):
            return self.joined
        outcome = await self.rooms.join(self.room_id, Peer(self.id, self.user, self.generation))
        if isinstance(outcome, Refused):
            self._refused(outcome)
            return False
        self.joined = True
        if isinstance(outcome, Waiting):
            self.waiting = True
            self.send({"type": "waiting", "self": self._view(self.id, self.user)})
            return True
        self._welcome(outcome)
        log.debug("webrtc: a peer joined room %s (%d others)", self.room_id, len(outcome.peers))
        return True

    async def _resume(self, peer_id: str) -> bool:
        """The page came back with its peer id (resume.py): True when that decided (its seat
        back, or closed), False when it joins afresh."""
        outcome = await self.rooms.resume(self.room_id, Peer(peer_id, self.user))
        if outcome == "replaced":  # the same participant's newer page holds the seat
            self.gone = True
            self.close(REPLACED, "replaced by a newer connection")
        elif isinstance(outcome, Refused):
            self._refused(outcome)
        elif isinstance(outcome, Resumed):
            for old in [c for c in self.registry if c.id == peer_id and c.user == self.user]:
                old.going_away("resumed by a newer connection")  # its socket is dead: no leave
            self.id, self.joined, self.waiting = peer_id, True, outcome.waiting
            if outcome.waiting:
                self.send({"type": "waiting", "self": self._view(self.id, self.user)})
            else:
                self._welcome(Joined(outcome.peers, waiting=outcome.knocks), "resumed")
        return outcome is not None

    def going_away(self, reason: str = "server shutting down; reconnect") -> None:
        """This replica stops (or the page resumed on a newer connection): the seat is kept,
        no leave, and the others' peer connections carry on."""
        self.keeps_seat = True
        self.close(WSCloseCode.GOING_AWAY, reason)

    def _refused(self, refused: Refused) -> None:
        self.gone = True
        if refused.why == "full":
            self.close(ROOM_FULL, "room full")
        elif refused.why == "not_invited":
            self.close(WSCloseCode.POLICY_VIOLATION, "not a participant of this room")
        else:
            self.end(refused.end_reason or "cancelled")

    def _welcome(self, joined: Joined, kind: str = "joined") -> None:
        self.peers = {peer.id: peer.user for peer in joined.peers}
        self.send(
            {
                "type": kind,
                "self": self._view(self.id, self.user),
                "peers": [self._view(peer.id, peer.user) for peer in joined.peers],
                # With the lobby only: without it the message is what it always was.
                **(
                    {"waiting": [self._knock(k) for k in joined.waiting]}
                    if self.rooms.lobby
                    else {}
                ),
            }
        )

    async def _read(self) -> None:
        async for message in self.ws:  # ends at the close; aiohttp closes huge frames (1009)
            if message.type is WSMsgType.ERROR:
                return
            if not self._take_rate_token():
                raise violation("rate limit exceeded")
            parsed = parse_message(message)
            if self._closing:
                return
            await self._handle(parsed)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "join":
            raise violation("already joined")
        if self.waiting:
            raise violation("waiting to be admitted")
        if kind in ("admit", "decline"):
            if not self.members[self.user].is_admin:
                raise violation("only the host can admit or decline")
            peer = text_field(message, "peer", MAX_ID_CHARS)
            await decide(self.rooms, self.room_id, self.id, peer, kind)
        elif kind in ("offer", "answer"):
            to = text_field(message, "to", MAX_ID_CHARS)
            sdp = text_field(message, "sdp", MAX_MESSAGE_BYTES)
            await self._relay(to, {"type": kind, "from": self.id, "sdp": sdp})
        elif kind == "candidate":
            to = text_field(message, "to", MAX_ID_CHARS)
            candidate = ice_candidate(message)
            await self._relay(to, {"type": kind, "from": self.id, "candidate": candidate})
        elif kind == "video-paused":
            to = text_field(message, "to", MAX_ID_CHARS)
            await self._relay(to, {"type": kind, "from": self.id, **video_paused(message)})
        elif kind in ("media", "chat", "screen"):
            state = to_everyone(kind, message, self.members[self.user].tools)
            for peer in list(self.peers):  # seated peers only: a waiting one is never listed
                await self.rooms.post(peer, {"type": kind, "from": self.id, **state})
        elif kind == "end":
            if not self.members[self.user].is_admin:
                raise violation("only the host can end the call")
            await self.rooms.end(self.room_id, "ended_by_host", by=self.id)
            self.end("ended_by_host")
        else:
            raise violation("unknown message type")

    async def _relay(self, to: str, message: dict[str, Any]) -> None:
        if to == self.id:
            raise violation("cannot signal yourself")
        if to in self.peers:  # else the peer just left (a normal race) or was never here
            await self.rooms.post(to, message)

    async def _evicted(self) -> None:
        """The room no longer lists this peer. A newer connection of the same participant
        may have replaced it since the mailbox was last taken: its `replaced` is delivered
        first (the page stays closed), and only a presence that was lost says reconnect."""
        self.gone = True
        for message in await self.rooms.take(self.id):
            self._deliver(message)
        self.close(WSCloseCode.TRY_AGAIN_LATER, "presence lost; reconnect")

    async def _pump(self) -> None:
        """Take this peer's mailbox every poll interval; heartbeat every heartbeat interval."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.timing.heartbeat_seconds
        try:
            while not self._closing:
                for message in await self.rooms.take(self.id):
                    self._deliver(message)
                if loop.time() >= next_beat and not self._closing:
                    next_beat = loop.time() + self.timing.heartbeat_seconds
                    if self.rooms.clock().timestamp() >= self.expires_at:
                        await self._leave()  # the others are told, then the page
                        self.end("expired")
                        return
                    beat = await self.rooms.heartbeat(self.room_id, self.id)
                    if beat.outcome == "evicted":
                        await self._evicted()
                    elif beat.outcome != "ok":
                        self.end(beat.end_reason or "cancelled")
                await asyncio.sleep(self.timing.poll_seconds)
        except ServiceError as error:
            log.warning("webrtc: signaling failed: %s", error.message)
            self.close(WSCloseCode.INTERNAL_ERROR, "signaling unavailable; reconnect")
        except Exception:
            log.exception("webrtc: signaling failed unexpectedly")
            self.close(WSCloseCode.INTERNAL_ERROR, "internal error")

    def _deliver(self, message: dict[str, Any]) -> None:
        """A message from the mailbox, to the page (what the store holds is ours, but an old
        version's leftovers must not crash a connection: anything unknown is dropped)."""
        kind = message.get("type")
        sender = message.get("from")
        if self.waiting and kind in ("admitted", "declined"):
            self._decided(message)
        elif kind in ("knock", "knock-withdrawn"):
            self._lobby_news(message)
        elif self.waiting and kind not in ("ended", "replaced"):
            return  # nothing about the others reaches a page in the lobby
        elif kind == "peer-joined" and isinstance(message.get("peer"), str):
            peer, user = str(message["peer"]), str(message.get("user"))
            self.peers[peer] = user
            self.send({"type": "peer-joined", "peer": self._view(peer, user)})
        elif kind == "peer-left" and self.peers.pop(str(message.get("peer")), None) is not None:
            self.send({"type": "peer-left", "id": message["peer"]})
        elif kind in RELAYED and sender in self.peers:
            self.send(message)
        elif kind == "ended":
            self.end(str(message.get("reason") or "cancelled"))
        elif kind == "replaced":
            self.gone = True
            self.close(REPLACED, "replaced by a newer connection")

    def _decided(self, message: dict[str, Any]) -> None:
        """A plus participant admitted this page (it offers to the peers seated) or declined
        it (the page shows the refusal; the room no longer lists it)."""
        if message["type"] == "declined":
            self.gone = True
            self.send({"type": "declined"})
            self.close(DECLINED, "declined")
            return
        seated = [(str(peer), str(user)) for peer, user in message.get("peers", [])]
        self.waiting = False
        self._welcome(Joined(tuple(Peer(peer, user) for peer, user in seated)))

    def _lobby_news(self, message: dict[str, Any]) -> None:
        """A knock, or its end, for a plus participant's page; no one else hears of it."""
        if not self.members[self.user].is_admin or self.waiting:
            return
        if message["type"] == "knock":
            knock = Knock(str(message["peer"]), str(message["user"]), str(message["since"]))
            self.send({"type": "knock", "peer": self._knock(knock)})
        else:
            self.send({"type": "knock-withdrawn", "id": str(message["peer"])})

    def _knock(self, knock: Knock) -> dict[str, object]:
        return {**self._view(knock.peer, knock.user), "since": knock.since}

    async def _leave(self) -> None:
        if not self.joined or self.gone or self.keeps_seat:
            return
        try:
            await self.rooms.leave(self.room_id, self.id)
        except ServiceError as error:  # its heartbeat stops: the others drop it soon
            log.warning("webrtc: a peer could not leave its room: %s", error.message)

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, _Close):
                await self.ws.close(code=item.code, message=item.reason.encode())
                return
            try:
                await self.ws.send_str(item)
            except ConnectionError:  # the browser went away; the reader sees it too
                self._closing = True
                return

    def _view(self, peer: str, user: str) -> dict[str, object]:
        member = self.members.get(user, Member("", is_admin=False))
        return {"id": peer, "name": member.name, "isAdmin": member.is_admin}

    def _take_rate_token(self) -> bool:
        now = time.monotonic()
        self._allowance = min(
            RATE_BURST, self._allowance + (now - self._refilled) * RATE_PER_SECOND
        )
        self._refilled = now
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True
