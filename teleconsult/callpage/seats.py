"""Who a call page's link lets in, for every provider that serves the page (`webrtc`,
`janus`): the checks of the link's credential against the consultation, the page's info,
and the answer that refuses a link. A provider adds what only it knows (`webrtc`: its room
document has not ended). `ProviderPages`: what every provider's page routes share (finding
the running provider, admission, the page, the assets, the route table); a provider's
`pages.py` makes one and adds its own routes (its info, WebSocket or token); `./tools` is
the same for all (`page_tools`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.callpage.catalogs import Catalogs
from teleconsult.callpage.links import Credential, LinkSigner
from teleconsult.callpage.page import Asset, CallPage, default_call_page
from teleconsult.errors import Forbidden, InvalidRequest, ServiceError
from teleconsult.observability import redaction
from teleconsult.providers.storage import RoomRoster, Roster, RosterEntry
from teleconsult.services import VIDEO_PROVIDER

log = logging.getLogger("teleconsult.callpage")

REVOKED = "revoked"
"""The ending page of a link whose generation was revoked."""
REMOVED = "removed"
"""The ending page of a participant removed from the call."""
PAGE_TOOLS = ("chat", "screen_sharing")
"""The tools of `domain.TOOLS` the call page offers; the others are not offered by it."""


@dataclass(frozen=True)
class Seat:
    """A credential the page (and its connection) accepts, with what it opens."""

    credential: Credential
    roster: RoomRoster
    me: RosterEntry
    language: str | None
    """The catalog language the participant's link or record names; None: the browser's."""


@dataclass(frozen=True)
class Refusal:
    """Why a credential opens nothing (an ending page's reason), its status, its language,
    and when it opens (not open yet)."""

    why: str
    status: int
    language: str | None = None
    opens_at: datetime | None = None


async def check_seat(
    signer: LinkSigner, text: str, now: datetime, roster: Roster, catalogs: Catalogs
) -> Seat | Refusal:
    """Whether a credential opens its call now: signed by us, inside its window, for a
    teleconsultation that is not cancelled, whose room is still this one, and which names
    this participant, not removed, with a link of their current generation. Read at every
    request, so a cancelled or replaced room's links, and revoked ones, stop working at once,
    on every replica."""
    credential = signer.verify(text)
    if credential is None:
        return Refusal("invalid", 404)
    language = credential.language
    if now.timestamp() < credential.opens_at:
        opens_at = datetime.fromtimestamp(credential.opens_at, UTC)
        return Refusal("not_open", 403, language, opens_at)
    if now.timestamp() >= credential.expires_at:
        return Refusal("expired", 410, language)
    found = await roster(credential.teleconsultation_id)
    me = None if found is None else _entry(found, credential.user_id)
    if found is None or me is None:
        return Refusal("gone", 410, language)
    language = language or catalogs.match(me.language)
    if found.cancelled:
        return Refusal("cancelled", 410, language)
    if me.blocked:  # removed from the call (issue 30): any of their links
        return Refusal(REMOVED, 403, language)
    if credential.generation < me.link_generation:  # a link made before a revocation
        return Refusal(REVOKED, 410, language)
    if found.provider_room_id != credential.room_id:
        return Refusal("gone", 410, language)
    return Seat(credential, found, me, language)


def page_tools(entry: RosterEntry) -> list[str]:
    """The in-call tools of a participant's level (the service configuration's `privileges`)
    that the call page offers, in `PAGE_TOOLS` order."""
    return [tool for tool in PAGE_TOOLS if tool in entry.tools]


def seat_info(page: CallPage, seat: Seat, language: str, *, ids: bool = False) -> dict[str, object]:
    """What every page shows: names (from the record, never in the URL), the schedule, its
    texts and the lobby's notice delay; with `ids`, each participant's provider user id and
    page tools too (how a transport that learns peers by id names their tiles, and drops what
    a peer's level may not send when no server of ours relays it)."""
    roster = seat.roster
    return {
        "language": language,
        "texts": page.catalogs[language],
        "self": {"name": seat.me.display_name, "isAdmin": seat.me.is_admin},
        "participants": [
            {
                **({"id": p.provider_user_id, "tools": page_tools(p)} if ids else {}),
                "name": p.display_name,
                "isAdmin": p.is_admin,
                "self": p is seat.me,
            }
            for p in roster.participants
        ],
        "schedule": {
            "opensAt": iso(roster.opens_at),
            "startsAt": iso(roster.starts_at),
            "endsAt": iso(roster.ends_at),
            "limited": roster.limited,
        },
        # Only with CALL_PAGE_LOBBY: without it the info is what it always was.
        **({"lobby": {"noticeAfterMs": page.lobby.notice_ms}} if page.lobby.enabled else {}),
    }


Admit = Callable[[str], Awaitable["Seat | Refusal"]]
"""A provider's check of a credential (`check_seat` and its own), as a page's request asks."""


async def seat_of(
    request: web.Request, page: CallPage, admit: Admit | None, *, html: bool = True
) -> Seat | web.Response:
    """The seat a page request's credential (its `{credential}` path part) opens, or the
    answer that refuses it: not found when the provider is not running (`admit` None), 503
    when the store cannot be read. The credential and the names are kept out of the logs."""
    credential = request.match_info["credential"]
    redaction.sensitive([credential])
    refusal = Refusal("invalid", 404)
    if admit is not None:
        try:
            found = await admit(credential)
        except ServiceError as error:  # the store is down: say so, in the page's form
            log.warning("a call link could not be checked: %s", error.message)
            found = Refusal("connection_lost", 503)
        if isinstance(found, Seat):
            redaction.sensitive(p.display_name for p in found.roster.participants)
            return found
        refusal = found
    return refused(request, page, refusal, html=html)


def refused(
    request: web.Request, page: CallPage, refusal: Refusal, *, html: bool = True
) -> web.Response:
    """The ending page (or, for the page's own requests, its JSON) in the right language."""
    language = page.language(refusal.language, request.headers.get("Accept-Language"))
    if html:
        return page.ending(refusal.why, refusal.status, language, opens_at=refusal.opens_at)
    return page.ending_json(refusal.why, refusal.status, language)


def same_origin(request: web.Request, public_url: str) -> bool:
    """A browser's request must come from the page's own origin (this host, or the public
    URL's): another site's page holding a stolen link cannot drive the call from there."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser; the credential is still required
        return True
    host = urlsplit(origin).netloc.lower()
    return host in (request.host.lower(), urlsplit(public_url).netloc.lower())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entry(roster: RoomRoster, user_id: str) -> RosterEntry | None:
    return next((p for p in roster.participants if p.provider_user_id == user_id), None)


P = TypeVar("P")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProviderPages(Generic[P]):
    """One provider's call page routes. Every route finds the running provider under
    `VIDEO_PROVIDER` and answers as if it did not exist when another provider runs."""

    def __init__(
        self,
        kind: type[P],
        *,
        call_path: str,
        assets_path: str,
        page_of: Callable[[P], CallPage],
        admit_of: Callable[[P], Admit],
        package: str,
        transport: str,
    ) -> None:
        self.kind = kind
        self.page_path = call_path + "{credential}"
        self.assets_path = assets_path
        self.page_of = page_of
        self.admit_of = admit_of
        self.transport = transport
        self.own_assets = {
            transport: Asset.of(
                (resources.files(package) / "assets" / transport).read_bytes(), "text/javascript"
            )
        }
        """This provider's transport, served beside the shared page's files."""
        self.default_page = default_call_page()
        """The page's answers when another provider runs (its routes then open nothing)."""

    def provider(self, request: web.Request) -> P | None:
        provider = request.app[VIDEO_PROVIDER]
        return provider if isinstance(provider, self.kind) else None

    def page(self, provider: P | None) -> CallPage:
        return self.default_page if provider is None else self.page_of(provider)

    async def admit(
        self,
        request: web.Request,
        *,
        html: bool = True,
        admit_of: Callable[[P], Admit] | None = None,
    ) -> tuple[P, Seat] | web.Response:
        """The running provider and the seat a request's credential opens, or the answer
        that refuses it (`admit_of`: another of the provider's checks than its pages')."""
        provider = self.provider(request)
        check = None if provider is None else (admit_of or self.admit_of)(provider)
        found = await seat_of(request, self.page(provider), check, html=html)
        if isinstance(found, web.Response):
            return found
        assert provider is not None  # a seat comes only from a running provider's check
        return provider, found

    async def call_page(self, request: web.Request) -> web.Response:
        admitted = await self.admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        provider, found = admitted
        page = self.page_of(provider)
        return page.page(self.language(request, page, found.language), self.transport)

    async def plus_page(
        self,
        request: web.Request,
        public_url: Callable[[P], str],
        forbidden: str,
        admit_of: Callable[[P], Admit] | None = None,
    ) -> tuple[P, Seat] | web.Response:
        """A request only a plus participant's page makes (remove someone, admit or decline
        a knock, end the call), checked for every provider alike: the credential's seat, the
        page's own origin, a plus participant (else 403 with `forbidden`)."""
        admitted = await self.admit(request, html=False, admit_of=admit_of)
        if isinstance(admitted, web.Response):
            return admitted
        provider, seat = admitted
        if not same_origin(request, public_url(provider)):
            refusal = Refusal("invalid", 403, seat.language)
            return refused(request, self.page_of(provider), refusal, html=False)
        if not seat.me.is_admin:
            raise Forbidden(forbidden)
        return provider, seat

    async def removal(
        self, request: web.Request, public_url: Callable[[P], str], max_peer_chars: int
    ) -> tuple[P, Seat, str] | web.Response:
        """`POST .../remove {"peer": id}` (the page's Remove, `removal.js`): a plus
        participant's page (`plus_page`) and a peer id of the transport's shape. The provider
        removes that peer."""
        return await self.about_peer(
            request,
            public_url,
            max_peer_chars,
            "Only a plus participant's page may remove someone from the call.",
        )

    async def about_peer(
        self,
        request: web.Request,
        public_url: Callable[[P], str],
        max_peer_chars: int,
        forbidden: str,
    ) -> tuple[P, Seat, str] | web.Response:
        """A plus participant's page's request about one peer: `{"peer": id}`, an id of the
        transport's shape (at most `max_peer_chars`)."""
        asked = await self.plus_page(request, public_url, forbidden)
        if isinstance(asked, web.Response):
            return asked
        try:
            body = await request.json() if request.content_length else None
        except ValueError:
            body = None
        peer = body.get("peer") if isinstance(body, dict) else None
        if not isinstance(peer, str) or not peer.isascii() or not 0 < len(peer) <= max_peer_chars:
            raise InvalidRequest('The body must be {"peer": "<a peer id from the call>"}.')
        return *asked, peer

    async def tools(self, request: web.Request) -> web.Response:
        """`GET .../tools`: the in-call tools the page offers its participant (`page_tools`);
        a page shows no control its level lacks."""
        admitted = await self.admit(request, html=False)
        if isinstance(admitted, web.Response):
            return admitted
        provider, seat = admitted
        return web.json_response(
            {"tools": page_tools(seat.me)}, headers=self.page_of(provider).no_store
        )

    @staticmethod
    def language(request: web.Request, page: CallPage, language: str | None) -> str:
        """The participant's language, else the browser's, else the default."""
        return page.language(language, request.headers.get("Accept-Language"))

    async def asset(self, request: web.Request) -> web.Response:
        return self.page(self.provider(request)).asset(request, self.own_assets)

    def routes(
        self,
        *,
        info: Handler,
        more: Iterable[web.AbstractRouteDef] = (),
        page: Handler | None = None,
    ) -> list[web.AbstractRouteDef]:
        """The page (`call_path` and the credential), its info and tools, the provider's own
        routes (`more`), and the assets under `assets_path`."""
        return [
            web.get(self.page_path, page or self.call_page),
            web.get(self.page_path + "/info", info),
            web.get(self.page_path + "/tools", self.tools),
            *more,
            web.get(self.assets_path + "{name}", self.asset),
        ]
