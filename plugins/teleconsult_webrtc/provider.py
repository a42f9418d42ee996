"""The `webrtc` video provider: rooms in the store, links to this server's call page.

It keeps nothing a replica needs in memory: rooms and presence are documents in
its `ProviderStorage`, signaling goes through mailboxes there (`rooms.py`), and
the link secret is configured or stored. Any replica can hand out a link, serve
its page, or carry its WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web

from teleconsult.plugin import (
    CallCounts,
    CallPage,
    CreatedRoom,
    JoinRequest,
    Level,
    LinkSigner,
    NotFound,
    ProviderError,
    ProviderLimits,
    ProviderStorage,
    RemoveParticipant,
    ReportEvents,
    Revocation,
    RoomSpec,
    Roster,
    ServiceError,
    check_seat,
    join_credential,
    stable_user_id,
)
from teleconsult.plugin import CallRefusal as Refusal
from teleconsult.plugin import CallSeat as Seat
from teleconsult.plugin import call_links as links

from . import revoking
from .hub import Hub, Timing
from .messages import Reports
from .rooms import LEGACY_USER_PREFIX, MAX_PARTICIPANTS, NAME, Rooms, new_room_id
from .signaling import Connection

log = logging.getLogger("teleconsult.webrtc")

CALL_PATH = "/webrtc/call/"
"""Every link starts with it after the public URL: the link marker, redacted from logs."""
CLOSE_SECONDS = 5.0
"""How long a stopping provider waits for its connections to leave their rooms."""
PRESENCE_HEARTBEATS = 3
"""A peer is gone once it missed this many heartbeats."""


@dataclass(frozen=True)
class Options:
    """The provider's settings, read once by the factory."""

    public_url: str
    link_secret: bytes | None = field(repr=False)
    link_grace: timedelta
    max_lifetime: timedelta
    timing: Timing
    call_page: CallPage

    @property
    def presence_ttl(self) -> timedelta:
        return timedelta(seconds=self.timing.heartbeat_seconds * PRESENCE_HEARTBEATS)


class WebRTCVideo:
    name = NAME
    limits = ProviderLimits(min_participants=2, max_participants=MAX_PARTICIPANTS)

    def __init__(
        self,
        options: Options,
        storage: ProviderStorage,
        roster: Roster,
        clock: Callable[[], datetime],
        report_events: ReportEvents | None = None,
    ) -> None:
        self.options = options
        self.storage = storage
        self.roster = roster
        self.clock = clock
        self.hub = Hub(storage, clock, options.timing, options.presence_ttl)
        self.rooms = Rooms(
            storage,
            clock,
            options.presence_ttl,
            self.hub,
            report_events,
            options.call_page.lobby.enabled,
        )
        self.reports = Reports()
        self.remove_participant: RemoveParticipant | None = None
        """The core's removal, for a plus participant's page (`remove_peer`)."""
        self._signer = None if options.link_secret is None else LinkSigner(options.link_secret)
        self._loading: asyncio.Task[LinkSigner] | None = None
        self._forgetting: asyncio.Task[None] | None = None
        self._start_loading()

    # -- the lifecycle -------------------------------------------------------------------------

    async def ensure_user(self, external_id: str, level: Level) -> str:
        # Nothing to store: the id is derived, and a room lists its participants itself.
        return stable_user_id(external_id)

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        return await self.create_named_room(self.room_name(), spec)

    # -- NamedRooms ----------------------------------------------------------------------------

    def room_name(self) -> str:
        return new_room_id()

    async def create_named_room(self, name: str, spec: RoomSpec) -> CreatedRoom:
        """A room document under the name the core chose (and wrote in the room's job
        first); its links are made when handed out. The core keeps counts and durations
        within `limits`; a room is refused here only if it could never run."""
        count, limits = len(spec.participants), self.limits
        if not limits.min_participants <= count <= limits.max_participants:
            raise self._refused(f"a full mesh takes 2 to {MAX_PARTICIPANTS} people, not {count}")
        if not any(p.is_admin for p in spec.participants):
            raise self._refused("a room needs at least one admin")
        await self.rooms.create(name, spec)
        await self.signer()  # a room is made to hand out links: its links can be made now
        return CreatedRoom(provider_room_id=name)

    async def delete_room(self, provider_room_id: str) -> None:
        await self.rooms.delete(provider_room_id)

    def join_link(self, join: JoinRequest) -> str:
        if self._signer is None:  # only in the first moments after a start, or the store is down
            self._start_loading()
            raise ProviderError(
                self.name, "make a join link", "unreachable", "its link secret is not loaded yet"
            )
        options = self.options
        credential = join_credential(
            join, options.link_grace, options.max_lifetime, options.call_page.catalogs
        )
        return self.options.public_url + CALL_PATH + self._signer.sign(credential)

    async def check(self) -> None:
        try:
            await self.signer()
            await self.storage.get(links.SECRET_KEY)
        except ServiceError as error:
            if isinstance(error, ProviderError):
                raise
            raise ProviderError(
                self.name, "reach its storage", "unreachable", error.message
            ) from None

    async def close(self) -> None:
        for task in (self._loading, self._forgetting):
            if task is not None:
                task.cancel()
        await self.close_connections()
        await self.hub.close()

    # -- LiveConnections -----------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """The pages this replica serves now."""
        return [c for c in self.hub.local.values() if isinstance(c, Connection)]

    async def close_connections(self) -> None:
        """Close the calls' WebSockets (1001) and wait until each closed; their seats are
        kept, and the pages resume them through another replica (their media never stops)."""
        connections = self.connections
        for connection in connections:
            connection.going_away()
        if connections:
            await asyncio.wait([c.finished for c in connections], timeout=CLOSE_SECONDS)

    # -- LiveCalls -------------------------------------------------------------------------------

    def call_counts(self) -> CallCounts:
        """The pages this replica serves, and the calls among them it counts: a call is
        counted by the replica serving its seated page with the smallest id, so summing
        every replica's count counts each call once."""
        pages = self.connections
        calls = sum(1 for c in pages if c.seated() and c.peers and c.id < min(c.peers))
        reports = self.reports
        return CallCounts(
            pages_connected=len(pages),
            calls_in_progress=calls,
            connected_direct=reports.connected["direct"],
            connected_relay=reports.connected["relay"],
            ice_failures=reports.ice_failed,
            reconnections=reports.reconnected,
        )

    # -- LinkRevocation ------------------------------------------------------------------------

    async def revoke_link(self, revocation: Revocation) -> None:
        """Disconnect the participant's pages now: those on this replica at once, those on
        another as its connection next takes its mailbox; the others are told they left."""
        await revoking.revoke(self.rooms, self.connections, revocation)

    async def remove_peer(self, request: web.Request, seat: Seat, peer: str) -> None:
        """A plus participant's page removes the participant of one of its peers: the core
        revokes and blocks them (recorded as theirs), then `revoke_link` cuts them off."""
        if self.remove_participant is None:
            raise revoking.cannot_remove(self.name)
        state = await self.rooms.get(seat.credential.room_id)
        whom = revoking.user_of_peer(state, peer)
        if whom is None:
            raise NotFound("That participant already left the call.")
        await self.remove_participant(
            request, seat.credential.teleconsultation_id, seat.me.provider_user_id, whom
        )

    # -- RoomDetails ---------------------------------------------------------------------------

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        state = await self.rooms.get(provider_room_id)
        if state is None:
            raise ProviderError(self.name, "describe a room", "bad_answer", "unknown room")
        return self.rooms.describe(state, await self.hub.alive())

    # -- the call page's side ------------------------------------------------------------------

    async def started(self) -> None:
        """Wait for what a replica does as it starts: the link secret loaded, then the
        documents earlier versions left deleted (requests never wait for the second)."""
        await self.signer()
        if self._forgetting is not None:
            await asyncio.shield(self._forgetting)

    async def signer(self) -> LinkSigner:
        if self._signer is not None:
            return self._signer
        self._start_loading()
        assert self._loading is not None
        return await asyncio.shield(self._loading)

    async def admit(self, text: str) -> Seat | Refusal:
        """Whether a credential opens its call now: the call page's checks (`check_seat`),
        then this provider's room exists and has not ended. Read at every request, so a
        cancelled or replaced room's links stop working at once, on every replica."""
        catalogs = self.options.call_page.catalogs
        found = await check_seat(await self.signer(), text, self.clock(), self.roster, catalogs)
        if isinstance(found, Refusal):
            return found
        room = await self.rooms.get(found.credential.room_id)
        if room is None:
            return Refusal("gone", 410, found.language)
        if room.ended_at is not None:
            return Refusal("ended", 410, found.language)
        return found

    # -- internals -----------------------------------------------------------------------------

    def _start_loading(self) -> None:
        """Load (or create) the shared link secret in the background: `join_link` cannot wait
        for the store, so it is fetched as the provider starts, and again after a failure.
        The same task deletes what earlier versions left, even when the secret is configured."""
        if self._loading is not None and (self._signer is not None or not self._loading.done()):
            return
        try:
            self._loading = asyncio.get_running_loop().create_task(self._load())
        except RuntimeError:  # no loop yet: the first async call loads it
            self._loading = None
            return
        self._loading.add_done_callback(_report)

    async def _load(self) -> LinkSigner:
        if self._signer is None:
            self._signer = LinkSigner(await links.stored_secret(self.storage))
        if self._forgetting is None:  # once, beside: nobody waits for it
            self._forgetting = asyncio.create_task(self._forget_users())
        return self._signer

    async def _forget_users(self) -> None:
        """Delete the `user/<provider user id>` documents earlier versions wrote (never read,
        never expiring, each naming a participant); a failure waits for the next start."""
        try:
            for found in await self.storage.find(LEGACY_USER_PREFIX):
                await self.storage.delete(found.key)
        except ServiceError as error:
            log.warning("webrtc: earlier user documents not deleted yet: %s", error.message)

    def _refused(self, why: str) -> ProviderError:
        return ProviderError(self.name, "create a room", "bad_answer", why)


def _report(loading: asyncio.Task[LinkSigner]) -> None:
    if not loading.cancelled() and (error := loading.exception()) is not None:
        message = error.message if isinstance(error, ServiceError) else repr(error)
        log.warning("webrtc: the link secret could not be loaded: %s", message)
