"""The call page's routes for the janus provider: the shared page (`CallPage`), its info, its
assets with this provider's transport (`assets/janus.js`), and the Janus token.

Every route finds the running provider under `VIDEO_PROVIDER` and answers as if it did not
exist when another provider runs. A link that opens nothing gets an ending page (404 not
valid, 403 not open yet, 410 expired, cancelled, gone or revoked, 403 removed). `POST
.../token` is how a page that may enter gets into Janus: its token, the room's number and
where Janus is; `POST .../remove`, how a plus participant's page removes someone.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.plugin import (
    NotFound,
    ProviderPages,
    mark_sensitive,
    seat_info,
)

from .admission import admit, janus_token
from .provider import CALL_PATH, JanusVideo, room_number

PAGES = ProviderPages(
    JanusVideo,
    call_path=CALL_PATH,
    assets_path="/janus/assets/",
    page_of=lambda provider: provider.call_page,
    admit_of=lambda provider: functools.partial(admit, provider),
    package=__package__,
    transport="janus.js",
)
"""The page, its admission and assets, with this provider's transport (`assets/janus.js`)."""
MAX_PEER_CHARS = 16
"""A tile's id: a Janus participant id, below 2^53."""


async def call_page(request: web.Request) -> web.Response:
    """The shared page, its policy letting the script reach Janus too."""
    response = await PAGES.call_page(request)
    provider = PAGES.provider(request)
    if provider is None or response.status != 200:  # a refusal keeps the page's own policy
        return response
    return _connecting_to(response, provider.options.public_url)


async def call_info(request: web.Request) -> web.Response:
    """What the page shows (`seat_info`), with each participant's id (Janus's display of a
    feed, by which the transport names its tile) and page tools (a chat from a feed whose
    level lacks the tool is not shown: Janus relays data channels unchecked)."""
    admitted = await PAGES.admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, seat = admitted
    page = provider.call_page
    info = seat_info(page, seat, PAGES.language(request, page, seat.language), ids=True)
    info["maxParticipants"] = provider.limits.max_participants
    return web.json_response(info, headers=page.no_store)


async def call_token(request: web.Request) -> web.Response:
    """The page's way into Janus, once it may enter: its token (in the room's `allowed` list
    from now on), the room, Janus's public URL, and the ICE servers for the link's window."""
    admitted = await PAGES.admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, seat = admitted
    token = await janus_token(provider, seat)
    mark_sensitive([token])
    ice = provider.call_page.ice(_moment(seat.credential.expires_at))
    return web.json_response(
        {
            "token": token,
            "room": room_number("join a room", seat.credential.room_id),
            "server": provider.options.public_url,
            "display": seat.me.provider_user_id,
            **ice,
        },
        headers=provider.call_page.no_store,
    )


async def remove_peer(request: web.Request) -> web.Response:
    """`POST .../remove {"peer": id}` (the shared page's Remove, `removal.js`): a plus
    participant's page removes the participant of a tile (its Janus participant id) from the
    call and keeps them out, as `PUT .../block` does; 204."""
    asked = await PAGES.removal(request, lambda provider: provider.options.page_url, MAX_PEER_CHARS)
    if isinstance(asked, web.Response):
        return asked
    provider, seat, peer = asked
    if not peer.isdigit():
        raise NotFound("That participant already left the call.")
    await provider.remove_peer(request, seat, int(peer))
    return web.Response(status=204, headers=provider.call_page.no_store)


def routes() -> list[web.AbstractRouteDef]:
    token = web.post(PAGES.page_path + "/token", call_token)
    remove = web.post(PAGES.page_path + "/remove", remove_peer)
    return PAGES.routes(page=call_page, info=call_info, more=[token, remove])


def _connecting_to(response: web.Response, janus_url: str) -> web.Response:
    """The page's policy, letting its script reach Janus too (JANUS_PUBLIC_URL's origin)."""
    parts = urlsplit(janus_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    policy = response.headers["Content-Security-Policy"]
    response.headers["Content-Security-Policy"] = policy.replace(
        "connect-src 'self'", f"connect-src 'self' {origin}"
    )
    return response


def _moment(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)
