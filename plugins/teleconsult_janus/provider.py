"""`JanusVideo`: rooms in Janus's videoroom, links to this service's call page.

A room is created under an id we choose before the call (`room_name`: a random integer below
2^53, so that janus.js and every JSON reader keep it exact), private (`is_private`: Janus
lists it to nobody), with a `secret` generated once per room and kept in the provider's
storage (every replica destroys it with the same secret), an `allowed` list (only the tokens
teleconsult hands to this consultation's participants join it) and `publishers` for each
participant. A creation whose answer was lost is repaired by asking again: Janus answers
427 "already exists" for our id, which is taken as created once `exists` confirms it.
Deleting destroys the room: Janus disconnects everyone in it at once, whichever replica
asked; so does ending the call for everyone (`end_call`), recorded first (`lobby.py`), so
that the room is never made again for an ended call. The details of a room are Janus's
`listparticipants`, with the lobby's knocks.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from teleconsult.plugin import (
    CallPage,
    CallSeat,
    CreatedRoom,
    JoinRequest,
    Level,
    LinkSigner,
    NotFound,
    ProviderError,
    ProviderEvent,
    ProviderLimits,
    ProviderStorage,
    RemoveParticipant,
    Revocation,
    RoomSpec,
    Roster,
    VersionConflict,
    join_credential,
    stable_user_id,
)

from . import events, repair, revoking
from .client import NO_SUCH_ROOM, ROOM_EXISTS, JanusClient, VideoroomError, field_of, refused
from .lobby import Calls
from .settings import Options
from .tokens import link_key

log = logging.getLogger(__name__)

NAME = "janus"
CALL_PATH = "/janus/call/"
"""Every link starts with it after the page URL: the link marker, redacted from logs."""
ROOM_KEY = "room/"
MAX_ROOM_ID = 2**53 - 1
"""The largest integer a JavaScript number holds exactly (janus.js reads room ids as numbers)."""


@dataclass(eq=False)
class JanusVideo:
    """The provider: Janus's HTTP API (`client`), the rooms' secrets and lobby in its
    `storage`, the consultations it reads (`roster`), and the call page it serves."""

    options: Options
    client: JanusClient
    storage: ProviderStorage
    roster: Roster
    call_page: CallPage
    clock: Callable[[], datetime]
    name: str = field(default=NAME, init=False)
    remove_participant: RemoveParticipant | None = field(default=None, init=False)
    """The core's removal, for a plus participant's page (`remove_peer`; set by the app)."""
    limits: ProviderLimits = field(init=False)
    signer: LinkSigner = field(init=False)
    calls: Calls = field(init=False)
    """Each room's lobby and end (`lobby.py`)."""

    def __post_init__(self) -> None:
        self.limits = ProviderLimits(max_participants=self.options.max_participants)
        self.signer = LinkSigner(link_key(self.options.token_secret))
        self.calls = Calls(self.storage, self.clock, self.call_page.lobby.enabled)

    async def ensure_user(self, external_id: str, level: Level) -> str:
        # Janus has no users: the id names the participant in their credential and token.
        return stable_user_id(external_id)

    async def create_room(self, spec: RoomSpec) -> CreatedRoom:
        return await self.create_named_room(self.room_name(), spec)

    def room_name(self) -> str:
        return str(secrets.randbelow(MAX_ROOM_ID) + 1)

    async def create_named_room(self, name: str, spec: RoomSpec) -> CreatedRoom:
        """The room `name` (chosen by the core, written in the room's job first) for `spec`."""
        operation = "create a room"
        refusal = self.limits.refusal(spec)
        if refusal is not None:
            raise ProviderError(NAME, operation, "bad_answer", refusal)
        await self.make_room(name, len(spec.participants))
        return CreatedRoom(provider_room_id=name)

    async def make_room(self, name: str, publishers: int, allowed: Sequence[str] = ()) -> bool:
        """Create the videoroom `name` letting in the tokens `allowed`, or find it made and
        add them: safe to repeat, on any replica, and how a room Janus forgot (a restart) is
        made again under its id and secret (`repair.py`). False, and nothing made, when its
        call was ended for everyone."""
        operation = "create a room"
        if await self.calls.ended(name):
            return False
        room = room_number(operation, name)
        secret = await self._room_secret(name)
        body: dict[str, object] = {
            "request": "create",
            "room": room,
            "admin_key": self.options.admin_key,
            "secret": secret,
            "is_private": True,
            "require_pvtid": True,  # a subscription names its page's feed: a kick ends it too
            "allowed": list(allowed),
            "publishers": publishers,
            "description": "teleconsultation",
        }
        try:
            await self.client.videoroom(operation, body)
        except VideoroomError as error:
            if error.code != ROOM_EXISTS:  # ours already: a lost answer, or a repeat
                raise refused(operation, error) from None
            if not await self.exists(name):
                raise refused(operation, error) from None
            if allowed:  # made meanwhile (another replica, a page's admission): add ours
                try:
                    await self.allow(name, allowed)
                except VideoroomError as again:
                    raise refused("allow a participant", again) from None
        return True

    async def allow(self, name: str, tokens: Sequence[str]) -> None:
        """Add `tokens` to the room's `allowed` list (Janus keeps one of each); raises
        `VideoroomError` when Janus refuses (426: it does not hold the room)."""
        operation = "allow a participant"
        stored = await self.storage.get(ROOM_KEY + name)
        if stored is None:
            raise ProviderError(NAME, operation, "bad_answer", "the room's secret is not stored")
        body = {
            "request": "allowed",
            "room": room_number(operation, name),
            "secret": stored.document["secret"],
            "action": "add",
            "allowed": list(tokens),
        }
        await self.client.videoroom(operation, body)

    async def repair_rooms(self) -> int:
        """`RoomRepair`: the live rooms Janus forgot, made again as they were (`repair.py`)."""
        return await repair.repair(self)

    async def exists(self, name: str) -> bool:
        operation = "check a room"
        try:
            answer = await self.client.videoroom(
                operation, {"request": "exists", "room": room_number(operation, name)}
            )
        except VideoroomError as error:
            raise refused(operation, error) from None
        return bool(field_of(operation, answer, "exists", bool))

    async def delete_room(self, provider_room_id: str) -> None:
        """Destroy the room (everyone in it is disconnected); one already gone is deleted."""
        if _room_id(provider_room_id) is None:
            return  # not a room of this provider's: none to delete
        await self.destroy(provider_room_id, "delete a room")
        await self.storage.delete(repair.LIVE_KEY + provider_room_id)  # never made again
        await self.storage.delete(ROOM_KEY + provider_room_id)
        await self.calls.delete(provider_room_id)

    async def destroy(self, name: str, operation: str) -> None:
        """Destroy the videoroom `name`: Janus disconnects every page in it at once (they are
        told `destroyed`); one already gone is done."""
        stored = await self.storage.get(ROOM_KEY + name)
        body: dict[str, object] = {
            "request": "destroy",
            "room": room_number(operation, name),
            "admin_key": self.options.admin_key,
        }
        if stored is not None:
            body["secret"] = stored.document["secret"]
        try:
            await self.client.videoroom(operation, body)
        except VideoroomError as error:
            if error.code != NO_SUCH_ROOM:
                raise refused(operation, error) from None

    async def end_call(self, seat: CallSeat) -> None:
        """A plus participant's page ends the call for everyone: recorded first (every later
        request of its links is refused as ended, and the room is never made again), then
        the room destroyed. Safe to repeat: a retry after Janus failed destroys it then."""
        room = seat.credential.room_id
        ended = await self.calls.end(room)
        await self.storage.delete(repair.LIVE_KEY + room)  # never made again
        await self.destroy(room, "end a call")
        if ended:
            await self.calls.ended_now(room)

    def join_link(self, join: JoinRequest) -> str:
        """This service's call page with a signed credential for this participant and room,
        bounded by the consultation's window (`LinkSigner`, the same as `webrtc`'s)."""
        window = self.options.window
        credential = join_credential(
            join, window.grace, window.max_lifetime, self.call_page.catalogs
        )
        return self.options.page_url + CALL_PATH + self.signer.sign(credential)

    async def describe_room(self, provider_room_id: str) -> dict[str, object]:
        """Who is connected now, by provider user id: each feed's participant as Janus's
        events told it (the token the page joined with), else the display the page gave;
        with the lobby, who waits and since when."""
        operation = "list a room's participants"
        call = await self.calls.get(provider_room_id)
        lobby = self.calls.lobby
        waiting = [{"userId": user, "since": since} for user, since in call.knocks(self.clock())]
        if call.ended_at is not None:  # ended for everyone: its room is gone
            return {"status": "ended", "connected": [], **({"waiting": []} if lobby else {})}
        try:
            answer = await self.client.videoroom(
                operation,
                {"request": "listparticipants", "room": room_number(operation, provider_room_id)},
            )
        except VideoroomError as error:
            raise refused(operation, error) from None
        present = field_of(operation, answer, "participants", list)
        feeds = {
            found.key.rpartition("/")[2]: str(found.document["user"])
            for found in await self.storage.find(f"feed/{provider_room_id}/")
        }
        connected = [
            feeds.get(str(p.get("id")), str(p.get("display", "")))
            for p in present
            if isinstance(p, dict)
        ]
        status = "ongoing" if connected else "waiting"
        return {"status": status, "connected": connected, **({"waiting": waiting} if lobby else {})}

    async def revoke_link(self, revocation: Revocation) -> None:
        """`LinkRevocation`: the participant's earlier tokens leave the room's `allowed` list
        and their pages are kicked (`revoking.py`), at once for every replica's pages."""
        room = await self._room(revocation.provider_room_id)
        if room is not None:  # else never made in Janus: no token of theirs, no one in it
            await revoking.revoke(self.client, self.storage, room, revocation)

    async def remove_peer(self, request: web.Request, seat: CallSeat, feed: int) -> None:
        """A plus participant's page removes the participant of a tile (a Janus participant
        id): the core revokes and blocks them (recorded as theirs), then `revoke_link`."""
        if self.remove_participant is None:
            raise NotFound("The janus provider runs without the service's core: none to ask.")
        room = await self._room(seat.credential.room_id)
        present = (
            [] if room is None else await revoking.participants(self.client, self.storage, room)
        )
        whom = next((user for found, user in present if found == feed), None)
        if whom is None or whom == seat.me.provider_user_id:
            raise NotFound("That participant already left the call.")
        await self.remove_participant(
            request, seat.credential.teleconsultation_id, seat.me.provider_user_id, whom
        )

    async def _room(self, name: str) -> revoking.Room | None:
        """A room of ours with its stored secret, or None (not ours, or never made)."""
        number = _room_id(name)
        stored = None if number is None else await self.storage.get(ROOM_KEY + name)
        if number is None or stored is None:
            return None
        return revoking.Room(name, number, str(stored.document["secret"]))

    async def verify_event(
        self, headers: Mapping[str, str], body: bytes
    ) -> Sequence[ProviderEvent]:
        """Janus's event handler's posts (`events.py`): its basic credentials, then joins,
        leaves and the call's start and end. Janus saying it started (it forgot every room)
        has the live rooms made again at once, before the pages reconnect, rather than at the
        reconciler's next pass (which tries again if this fails)."""
        events.check_credentials(headers, self.options.events_user, self.options.events_password)
        posted = events.parse(body)
        moments = await events.read(self.storage, posted)
        if events.started(posted):
            try:
                made = await self.repair_rooms()
            except ProviderError as error:
                log.warning("janus started; its rooms are made again at the next pass: %s", error)
            else:
                log.info("janus started: %d live rooms made again", made)
        return moments

    async def check(self) -> None:
        """Janus answers, knows our tokens, and has the videoroom: a read of a room no one has."""
        await self.exists("1")

    async def close(self) -> None:
        await self.client.close()

    async def _room_secret(self, name: str) -> str:
        """The room's secret: read it, or create it if no call (on any replica) has yet."""
        key = ROOM_KEY + name
        for _ in range(3):
            found = await self.storage.get(key)
            if found is not None:
                return str(found.document["secret"])
            secret = secrets.token_urlsafe(24)
            try:
                await self.storage.put(key, {"secret": secret}, None)
            except VersionConflict:
                continue  # another replica made it first: read theirs
            return secret
        raise VersionConflict(key)


def _room_id(name: str) -> int | None:
    """The videoroom's number for a room name of ours, or None for any other name."""
    if not name.isascii() or not name.isdigit() or not 0 < int(name) <= MAX_ROOM_ID:
        return None
    return int(name)


def room_number(operation: str, name: str) -> int:
    number = _room_id(name)
    if number is None:
        raise ProviderError(NAME, operation, "bad_answer", "not a room id of this provider")
    return number
