"""Signaling: one WebSocket per participant's page, relayed through the store's mailboxes.

The browser protocol (JSON text frames) is in `messages.py`. `joined` lists `waiting` only
with the lobby (CALL_PAGE_LOBBY); the newcomer offers to each of `peers`. Peers are named by
a per-page id, never by participant: an answer meant for a closed page cannot reach its
successor (a page that `resume`s is the same page, same id).

A message for a peer goes through the replica's hub (`hub.py`): in memory to a page this
replica serves, else to the peer's mailbox in the store, which the serving replica's hub
takes for all its pages at once (a resumed page's too: the hub adopts it); the hub also
says, for all of them, that they are still connected. Nothing about other peers is kept in
memory but the ids this connection was told about (to drop messages for strangers).

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
from collections.abc import Mapping
from typing import Any, NamedTuple

from aiohttp import WSCloseCode, WSMsgType, web

from teleconsult.plugin import ServiceError

from .hub import Hub
from .lobby import decide
from .messages import HARD_MAX_MESSAGE_BYTES as HARD_MAX_MESSAGE_BYTES
from .messages import (
    MAX_ID_CHARS,
    MAX_REPORTS,
    Member,
    ProtocolError,
    RateLimit,
    Reports,
    ice_candidate,
    parse_message,
    reported,
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

RELAYED = ("offer", "answer", "candidate", "media", "chat", "screen", "video-paused")

CALL_ENDED = 4000
ROOM_FULL = 4001
REPLACED = 4002
DECLINED = 4003


class _Close(NamedTuple):
    code: int
    reason: str


class Connection:
    """One participant's WebSocket: what the hub delivers to it, and its outgoing queue.

    Outgoing frames go through a queue drained by one writer task: the hub and the
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
        expires_at: int,
        generation: int = 0,
        reports: Reports | None = None,
    ) -> None:
        self.hub: Hub = rooms.hub
        self.id = self.hub.new_peer_id()
        self.ws = ws
        self.rooms = rooms
        self.room_id = room_id
        self.user = user
        self.members = members
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
        """Closed as the replica stops (or its page resumed elsewhere): no leave, the page
        resumes its seat."""
        self.reports = reports or Reports()
        self._reports_left = MAX_REPORTS
        self._early: list[dict[str, Any]] | None = []
        """What the hub delivered before the page was told it joined (None once told)."""
        self._expiring: asyncio.Task[None] | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the connection left its room and closed."""
        self._outbox: asyncio.Queue[str | _Close] = asyncio.Queue()
        self._closing = False
        self._rate = RateLimit()

    async def serve(self) -> None:
        """Run the connection until it closes; always leaves the room it joined, even when
        the handler is cancelled (the browser went away, the server stops)."""
        writer = asyncio.create_task(self._write())
        close = _Close(WSCloseCode.OK, "")
        self.hub.register(self)
        try:
            if await self._join():
                self._ready()
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
            await asyncio.shield(asyncio.ensure_future(self._finish(writer, close)))

    async def _finish(self, writer: asyncio.Task[None], close: _Close) -> None:
        """Leave the room (the others are told), stop being served by the hub, then close."""
        if self._expiring is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiring
        await self._leave()
        self.hub.unregister(self)
        self.close(*close)
        try:
            await asyncio.wait_for(writer, CLOSE_TIMEOUT_SECONDS)
        except (TimeoutError, ConnectionError):
            writer.cancel()
        finally:
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

    # -- what the hub asks -----------------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        """A message from the room or a peer: kept until the page was told it joined."""
        if self._early is not None:
            self._early.append(message)
        else:
            self._deliver(message)

    def known_peers(self) -> list[str]:
        return list(self.peers)

    def seated(self) -> bool:
        """In the call: joined, not waiting in the lobby, not on its way out."""
        return self.joined and not self.waiting and not self.gone and not self._closing

    def expire(self) -> None:
        """The link's window closed: leave (the others are told), then end the page's call."""
        if self._expiring is None and not self._closing:
            self._expiring = asyncio.get_running_loop().create_task(self._expire())

    async def _expire(self) -> None:
        await self._leave()
        self.end("expired")

    def _ready(self) -> None:
        early, self._early = self._early or [], None
        for message in early:
            self._deliver(message)

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
        back, or closed), False when it joins afresh. Its seat back, this replica's hub serves
        it under that id (`adopt`), whichever replica's id the id starts with."""
        peer = Peer(peer_id, self.user, self.generation)
        outcome = await self.rooms.resume(self.room_id, peer)
        if outcome == "replaced":  # the same participant's newer page holds the seat
            self.gone = True
            self.close(REPLACED, "replaced by a newer connection")
        elif isinstance(outcome, Refused):
            self._refused(outcome)
        elif isinstance(outcome, Resumed):
            old = self.hub.local.get(peer_id)
            if isinstance(old, Connection) and old is not self:  # half-open: no leave
                old.going_away("resumed by a newer connection")
            self.hub.unregister(self)
            self.id, self.joined, self.waiting = peer_id, True, outcome.waiting
            self.hub.adopt(self)
            if outcome.waiting:
                self.send({"type": "waiting", "self": self._view(self.id, self.user)})
            else:
                self._welcome(Joined(outcome.peers, waiting=outcome.knocks), "resumed")
        return outcome is not None

    def going_away(self, reason: str = "server shutting down; reconnect") -> None:
        """This replica stops (or the page resumed on a newer connection): the seat is kept,
        no leave, the others' peer connections carry on, and the hub no longer takes this
        page's mailbox: what is posted to it waits for the replica the page resumes on."""
        self.keeps_seat = True
        self.hub.part(self)
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
            if not self._rate.take():
                raise violation("rate limit exceeded")
            parsed = parse_message(message)
            if self._closing:
                return
            if parsed["type"] == "report":  # any page, a waiting one too: for the metrics
                self._report(parsed)
                continue
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

    def _report(self, message: dict[str, Any]) -> None:
        """What the page saw of its call, for the operator's metrics (a few per page)."""
        event, path = reported(message)
        if self._reports_left > 0:
            self._reports_left -= 1
            self.reports.count(event, path)

    async def _relay(self, to: str, message: dict[str, Any]) -> None:
        if to == self.id:
            raise violation("cannot signal yourself")
        if to in self.peers:  # else the peer just left (a normal race) or was never here
            await self.rooms.post(to, message)

    def _deliver(self, message: dict[str, Any]) -> None:
        """A message from the mailbox, to the page (what the store holds is ours, but an old
        version's leftovers must not crash a connection: anything unknown is dropped)."""
        kind = message.get("type")
        sender = message.get("from")
        if self.waiting and kind in ("admitted", "declined"):
            self._decided(message)
        elif kind in ("knock", "knock-withdrawn"):
            self._lobby_news(message)
        elif self.waiting and kind not in ("ended", "replaced", "evicted"):
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
        elif kind == "evicted":  # its seat dropped (presence lost, an old connection left)
            self.gone = True
            self.close(WSCloseCode.TRY_AGAIN_LATER, "presence lost; reconnect")

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
