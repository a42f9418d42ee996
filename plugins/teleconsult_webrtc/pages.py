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

from aiohttp import web

from teleconsult.plugin import CallRefusal as Refusal
from teleconsult.plugin import (
    ProviderPages,
    refused,
    same_origin,
    seat_info,
)

from .messages import MAX_ID_CHARS, Member
from .provider import CALL_PATH, WebRTCVideo
from .rooms import MAX_PARTICIPANTS
from .signaling import HARD_MAX_MESSAGE_BYTES, PING_SECONDS, Connection

CHECK_PATH = "/webrtc/check"
"""The device and connection check that needs no link (docs/call-page.md)."""
PAGES = ProviderPages(
    WebRTCVideo,
    call_path=CALL_PATH,
    assets_path="/webrtc/assets/",
    page_of=lambda provider: provider.options.call_page,
    admit_of=lambda provider: provider.admit,
    package=__package__,
    transport="mesh.js",
)
"""The page, its admission and assets, with this provider's transport (`assets/mesh.js`)."""


async def call_info(request: web.Request) -> web.Response:
    """What the page shows: names (from the record, never in the URL), the schedule, its
    texts, and the ICE servers (TURN credentials as long as the link)."""
    admitted = await PAGES.admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    page = provider.options.call_page
    language = PAGES.language(request, page, found.language)
    return web.json_response(
        {
            **seat_info(page, found, language),
            **page.ice(valid_until=datetime.fromtimestamp(found.credential.expires_at, UTC)),
            "maxParticipants": MAX_PARTICIPANTS,
        },
        headers=page.no_store,
    )


async def check_page(request: web.Request) -> web.Response:
    """The checks of the lobby with no link: a patient tests their device the day before."""
    provider = PAGES.provider(request)
    if provider is None:
        raise web.HTTPNotFound()
    page = provider.options.call_page
    return page.check_page(PAGES.language(request, page, request.query.get("lang")))


async def check_info(request: web.Request) -> web.Response:
    """Its texts and STUN servers: no consultation, no credential, no TURN."""
    provider = PAGES.provider(request)
    if provider is None:
        raise web.HTTPNotFound()
    page = provider.options.call_page
    language = PAGES.language(request, page, request.query.get("lang"))
    return web.json_response(
        {
            "language": language,
            "texts": page.catalogs[language],
            **page.check_ice(),
        },
        headers=page.no_store,
    )


async def call_socket(request: web.Request) -> web.StreamResponse:
    admitted = await PAGES.admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    if not same_origin(request, provider.options.public_url):
        return refused(request, provider.options.call_page, Refusal("invalid", 403, found.language))
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
    asked = await PAGES.removal(request, lambda provider: provider.options.public_url, MAX_ID_CHARS)
    if isinstance(asked, web.Response):
        return asked
    provider, seat, peer = asked
    await provider.remove_peer(request, seat, peer)
    return web.Response(status=204, headers=provider.options.call_page.no_store)


def routes() -> list[web.AbstractRouteDef]:
    return PAGES.routes(
        info=call_info,
        more=[
            web.get(PAGES.page_path + "/ws", call_socket, allow_head=False),
            web.post(PAGES.page_path + "/remove", remove_peer),
            web.get(CHECK_PATH, check_page),
            web.get(CHECK_PATH + "/info", check_info),
        ],
    )
