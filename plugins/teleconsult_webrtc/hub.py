"""The replica's signaling hub: what every open page used to cost, paid once per replica.

- A message for a page this replica serves is delivered in memory, at once.
- A message for a page another replica serves goes to that page's mailbox in the store;
  each replica takes all its pages' mailboxes in one query every poll interval
  (`take_for`: the ids of the pages it serves now, whatever replica gave them their id).
  A page is served by one replica at a time, which is the only taker of its mailbox, and
  the store deletes exactly the rows it returned: a message is delivered once, or lost
  only with the page it was for.
- A page that resumes its seat (resume.py) keeps its peer id, whose first part names the
  replica that served it first (perhaps stopped since): the replica it resumes on adopts
  it (`adopt`), takes its mailbox from then on and lists it in its presence. A replica
  that stops lets its pages go (`part`): it no longer takes their mailboxes, so what is
  posted to them waits there for the replica they resume on.
- Presence: every heartbeat interval the hub writes one document, `replica/<id>`, listing
  the pages it serves. A peer is alive while a replica's document, written within the
  presence time, lists it (or it joined within that time): one write per replica per
  interval, whatever the number of pages. A peer that no replica lists any more (its
  replica died) is dropped from its room by the replicas serving its room's other peers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from teleconsult.plugin import ProviderStorage, ServiceError, VersionConflict

from .state import millis

log = logging.getLogger("teleconsult.webrtc")

REPLICA_PREFIX = "replica/"
MESSAGE_TTL = timedelta(minutes=1)
"""A signaling message not taken within a minute is useless: its peer is gone."""


@dataclass(frozen=True)
class Timing:
    poll_seconds: float
    """How often the hub takes its pages' mailboxes (one query)."""
    heartbeat_seconds: float
    """How often the hub writes its replica's presence (one document)."""


class Receiver(Protocol):
    """A page's connection, as the hub reaches it."""

    @property
    def id(self) -> str: ...

    @property
    def room_id(self) -> str: ...

    @property
    def expires_at(self) -> int: ...

    def deliver(self, message: dict[str, Any]) -> None:
        """A message from its room or a peer; never waits."""

    def known_peers(self) -> list[str]:
        """The peers its page was told about."""

    def expire(self) -> None:
        """Its link's window closed: leave the room, then end the call for the page."""


Sweep = Callable[[str, set[str]], Awaitable[None]]
"""`sweep(room_id, alive)`: drop the room's peers no replica serves any more."""


class Hub:
    def __init__(
        self,
        storage: ProviderStorage,
        clock: Callable[[], datetime],
        timing: Timing,
        presence_ttl: timedelta,
    ) -> None:
        self.replica = secrets.token_urlsafe(6)
        """This replica's id, for this run: the first part of its pages' ids."""
        self.storage = storage
        self.clock = clock
        self.timing = timing
        self.presence_ttl = presence_ttl
        self.local: dict[str, Receiver] = {}
        """The pages this replica serves, by peer id."""
        self.sweep: Sweep | None = None
        """Set by the rooms: drops the peers of dead replicas."""
        self.parting: set[str] = set()
        """Pages let go as this replica stops: still listed in its presence, never taken."""
        self._beat_due = False
        """A page was adopted: say so at the next poll, not a heartbeat later."""
        self._task: asyncio.Task[None] | None = None
        self._version: int | None = None
        self._alive: tuple[float, frozenset[str]] | None = None
        """When (loop time) the replicas' documents were last read, and the peers they list."""

    def new_peer_id(self) -> str:
        return f"{self.replica}.{secrets.token_urlsafe(12)}"

    def register(self, receiver: Receiver) -> None:
        """Serve this page from now on (before it joins: what is said to it is kept)."""
        self.local[receiver.id] = receiver
        self.parting.discard(receiver.id)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def adopt(self, receiver: Receiver) -> None:
        """Serve a page that resumed its seat under its own id, given by whichever replica:
        its mailbox is taken with this replica's pages', and the presence lists it at the
        next poll (the room's resume refreshed its join time meanwhile)."""
        self.register(receiver)
        self._beat_due = True

    def unregister(self, receiver: Receiver) -> None:
        """Stop serving this page (not a newer one under the same id)."""
        if self.local.get(receiver.id) is receiver:
            del self.local[receiver.id]

    def part(self, receiver: Receiver) -> None:
        """Let a page go that keeps its seat (this replica stops): its mailbox is no longer
        taken here, its id still listed in this replica's presence."""
        if self.local.get(receiver.id) is receiver:
            del self.local[receiver.id]
            self.parting.add(receiver.id)

    async def post(self, peer: str, message: dict[str, Any]) -> None:
        """To the page `peer`: in memory when this replica serves it, else to its mailbox
        (whichever replica serves it, or will once it resumes, takes it)."""
        receiver = self.local.get(peer)
        if receiver is not None:
            receiver.deliver(message)
        else:
            await self.storage.post(peer, message, MESSAGE_TTL)

    async def alive(self) -> set[str]:
        """The peers a replica said it serves within the presence time, and ours. The
        replicas' documents are read at most once per heartbeat interval: a peer that
        joined since is kept by its join time, and a dead replica's peers are dropped at
        most one interval later."""
        now = asyncio.get_running_loop().time()
        if self._alive is None or now - self._alive[0] >= self.timing.heartbeat_seconds:
            await self._read_alive()
        assert self._alive is not None
        return set(self._alive[1]).union(self.local)

    async def _read_alive(self) -> None:
        read_at = asyncio.get_running_loop().time()
        oldest = millis(self.clock() - self.presence_ttl)
        alive: set[str] = set()
        for found in await self.storage.find(REPLICA_PREFIX):
            if int(found.document.get("seen", 0)) >= oldest:
                alive.update(str(peer) for peer in found.document.get("peers", []))
        self._alive = (read_at, frozenset(alive))

    async def take(self) -> None:
        """Deliver what other replicas posted to this replica's pages (one query). A page let
        go while the query ran gets its messages back in its mailbox, for its next replica."""
        if not self.local:
            return
        for peer, message in await self.storage.take_for(sorted(self.local)):
            receiver = self.local.get(peer)
            if receiver is not None:
                receiver.deliver(message)
            elif peer in self.parting:
                await self.storage.post(peer, message, MESSAGE_TTL)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        """While this replica serves pages: take their mailboxes every poll interval, and
        write their presence every heartbeat interval (at once first)."""
        loop = asyncio.get_running_loop()
        next_beat, failing = loop.time(), False
        while self.local:
            try:
                await self.take()
                if loop.time() >= next_beat or self._beat_due:
                    next_beat = loop.time() + self.timing.heartbeat_seconds
                    await self._beat()
                if failing:
                    log.warning("webrtc: the signaling hub reaches the store again")
                failing = False
            except ServiceError as error:  # the pages stay; their messages wait in the store
                if not failing:  # once per outage, not at every poll
                    log.warning(
                        "webrtc: the signaling hub cannot reach the store: %s", error.message
                    )
                failing = True
            except Exception:
                log.exception("webrtc: the signaling hub failed unexpectedly")
            await asyncio.sleep(self.timing.poll_seconds)
        self._task = None  # no await since the loop's test: a new page starts a new task

    async def _beat(self) -> None:
        """End the pages whose link expired, say which pages this replica serves, and sweep
        the rooms where a page's peer is no longer served by anyone."""
        now, self._beat_due = self.clock(), False
        for receiver in list(self.local.values()):
            if now.timestamp() >= receiver.expires_at:
                receiver.expire()
        await self._write({"peers": sorted({*self.local, *self.parting}), "seen": millis(now)})
        await self._read_alive()
        alive = await self.alive()
        rooms = {
            receiver.room_id
            for receiver in self.local.values()
            if any(peer not in alive for peer in receiver.known_peers())
        }
        for room_id in rooms:
            if self.sweep is not None:
                await self.sweep(room_id, alive)

    async def _write(self, document: dict[str, Any]) -> None:
        key = REPLICA_PREFIX + self.replica
        try:
            self._version = await self.storage.put(key, document, self._version, self.presence_ttl)
        except VersionConflict:  # it expired and was purged: written again from scratch
            found = await self.storage.get(key)
            version = None if found is None else found.version
            self._version = await self.storage.put(key, document, version, self.presence_ttl)
