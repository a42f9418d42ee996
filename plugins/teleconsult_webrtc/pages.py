"""The call page's routes for this provider: the page, its info, its assets and its WebSocket,
served next to the API.

The page itself (HTML, UI, texts, headers, ending pages) is the core's `CallPage`, shared
with other providers; this module adds the info the UI reads, the mesh transport
(`assets/mesh.js`) and the signaling WebSocket. Every route finds the running provider
under `VIDEO_PROVIDER` and answers as if it did not exist when another provider runs. The
page has no names in it; the names come with the info, read from the roster at each request.
A link that opens nothing gets an ending page in the participant's language (404 not valid,
403 not open yet, 410 expired, cancelled or ended), and its WebSocket is refused before the
upgrade with the same status. `/webrtc/check` serves the lobby's checks with no link (no
consultation, no credential, STUN only: see docs/call-page.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.plugin import (
    VIDEO_PROVIDER,
    Asset,
    CallPage,
    Forbidden,
    InvalidRequest,
    default_call_page,
    refused,
    seat_info,
    seat_of,
)
from teleconsult.plugin import CallRefusal as Refusal
from teleconsult.plugin import CallSeat as Seat

from .messages import MAX_ID_CHARS, PAGE_TOOLS, Member
from .provider import CALL_PATH, WebRTCVideo
from .rooms import MAX_PARTICIPANTS
from .signaling import HARD_MAX_MESSAGE_BYTES, PING_SECONDS, Connection

PAGE_PATH = CALL_PATH + "{credential}"
CHECK_PATH = "/webrtc/check"
"""The device and connection check that needs no link (docs/call-page.md)."""
ASSETS_PATH = "/webrtc/assets/"
TRANSPORT = "mesh.js"
OWN_ASSETS = {
    TRANSPORT: Asset.of(
        (resources.files(__package__) / "assets" / TRANSPORT).read_bytes(), "text/javascript"
    )
}
"""This provider's transport, served beside the shared page's files."""
DEFAULT_PAGE = default_call_page()
"""The page's answers when another provider runs (its routes then open nothing)."""


async def call_page(request: web.Request) -> web.Response:
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    page = provider.options.call_page
    return page.page(_language(request, page, found.language), TRANSPORT)


async def call_tools(request: web.Request) -> web.Response:
    """The in-call tools of the participant's level that the page offers (the signaling
    refuses the others' messages: this only spares the page a control it cannot use)."""
    admitted = await _admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    tools = [t for t in admitted[1].me.tools if t in PAGE_TOOLS]
    return web.json_response({"tools": tools}, headers={"Cache-Control": "no-store"})


async def call_info(request: web.Request) -> web.Response:
    """What the page shows: names (from the record, never in the URL), the schedule, its
    texts, and the ICE servers (TURN credentials as long as the link)."""
    admitted = await _admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    page = provider.options.call_page
    language = _language(request, page, found.language)
    return web.json_response(
        {
            **seat_info(page, found, language),
            **page.ice(valid_until=datetime.fromtimestamp(found.credential.expires_at, UTC)),
            "maxParticipants": MAX_PARTICIPANTS,
            # Only with CALL_PAGE_LOBBY: without it the info is what it always was.
            **({"lobby": {"noticeAfterMs": page.lobby.notice_ms}} if page.lobby.enabled else {}),
        },
        headers=page.no_store,
    )


async def check_page(request: web.Request) -> web.Response:
    """The checks of the lobby with no link: a patient tests their device the day before."""
    provider = _provider(request)
    if provider is None:
        raise web.HTTPNotFound()
    page = provider.options.call_page
    return page.check_page(_language(request, page, request.query.get("lang")))


async def check_info(request: web.Request) -> web.Response:
    """Its texts and STUN servers: no consultation, no credential, no TURN."""
    provider = _provider(request)
    if provider is None:
        raise web.HTTPNotFound()
    page = provider.options.call_page
    language = _language(request, page, request.query.get("lang"))
    return web.json_response(
        {
            "language": language,
            "texts": page.catalogs[language],
            **page.check_ice(),
        },
        headers=page.no_store,
    )


async def call_socket(request: web.Request) -> web.StreamResponse:
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    if not _same_origin(request, provider.options.public_url):
        return _refusal(
            request, provider.options.call_page, Refusal("invalid", 403, found.language)
        )
    ws = web.WebSocketResponse(
        heartbeat=PING_SECONDS,
        max_msg_size=HARD_MAX_MESSAGE_BYTES,
        compress=False,  # small messages; no decompression to abuse
    )
    await ws.prepare(request)
    members = {
        p.provider_user_id: Member(p.display_name, p.is_admin, frozenset(p.tools))
        for p in found.roster.participants
    }
    connection = Connection(
        ws,
        provider.rooms,
        found.credential.room_id,
        found.me.provider_user_id,
        members,
        found.credential.expires_at,
        found.credential.generation,
        provider.reports,
    )
    await connection.serve()
    return ws


async def remove_peer(request: web.Request) -> web.Response:
    """`POST .../remove {"peer": id}`: a plus participant's page removes the participant of
    one of its peers from the call and keeps them out (as `PUT .../block`); 204."""
    admitted = await _admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    page = provider.options.call_page
    if not _same_origin(request, provider.options.public_url):
        return _refusal_json(request, page, Refusal("invalid", 403, found.language))
    if not found.me.is_admin:
        raise Forbidden("Only a plus participant's page may remove someone from the call.")
    try:
        body = await request.json() if request.content_length else None
    except ValueError:
        body = None
    peer = body.get("peer") if isinstance(body, dict) else None
    if not isinstance(peer, str) or not 0 < len(peer) <= MAX_ID_CHARS:
        raise InvalidRequest('The body must be {"peer": "<a peer id from the call>"}.')
    await provider.remove_peer(request, found, peer)
    return web.Response(status=204, headers=page.no_store)


async def asset(request: web.Request) -> web.Response:
    provider = _provider(request)
    page = DEFAULT_PAGE if provider is None else provider.options.call_page
    return page.asset(request, OWN_ASSETS)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get(PAGE_PATH, call_page),
        web.get(PAGE_PATH + "/info", call_info),
        web.get(PAGE_PATH + "/tools", call_tools),
        web.get(PAGE_PATH + "/ws", call_socket, allow_head=False),
        web.post(PAGE_PATH + "/remove", remove_peer),
        web.get(ASSETS_PATH + "{name}", asset),
        web.get(CHECK_PATH, check_page),
        web.get(CHECK_PATH + "/info", check_info),
    ]


# -- admission ---------------------------------------------------------------------------------


def _provider(request: web.Request) -> WebRTCVideo | None:
    provider = request.app[VIDEO_PROVIDER]
    return provider if isinstance(provider, WebRTCVideo) else None


async def _admit(
    request: web.Request, *, html: bool = True
) -> tuple[WebRTCVideo, Seat] | web.Response:
    """The running provider and the seat a request's credential opens, or the answer that
    refuses it."""
    provider = _provider(request)
    page = DEFAULT_PAGE if provider is None else provider.options.call_page
    found = await seat_of(request, page, None if provider is None else provider.admit, html=html)
    if isinstance(found, web.Response):
        return found
    assert provider is not None  # a seat comes only from a running provider's check
    return provider, found


def _language(request: web.Request, page: CallPage, language: str | None) -> str:
    """The participant's language, else the browser's, else the default."""
    return page.language(language, request.headers.get("Accept-Language"))


def _refusal(request: web.Request, page: CallPage, refusal: Refusal) -> web.Response:
    return refused(request, page, refusal)


def _refusal_json(request: web.Request, page: CallPage, refusal: Refusal) -> web.Response:
    return refused(request, page, refusal, html=False)


def _same_origin(request: web.Request, public_url: str) -> bool:
    """A browser's WebSocket must come from the page's own origin (this host, or the public
    URL's): another site's page holding a stolen link cannot drive the call from there."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser; the credential is still required
        return True
    host = urlsplit(origin).netloc.lower()
    return host in (request.host.lower(), urlsplit(public_url).netloc.lower())
