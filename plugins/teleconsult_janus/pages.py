"""The call page's routes for the janus provider: the shared page (`CallPage`), its info, its
assets with this provider's transport (`assets/janus.js`), and the Janus token.

Every route finds the running provider under `VIDEO_PROVIDER` and answers as if it did not
exist when another provider runs. A link that opens nothing gets an ending page (404 not
valid, 403 not open yet, 410 expired, cancelled, gone, revoked or ended, 403 removed). `POST
.../token` is how a page that may enter gets into Janus: its token, the room's number and
where Janus is; with the lobby, 202 while it waits and 403 `declined` (`lobby.py`), and a
waiting page that leaves or closes withdraws its knock (`POST .../leave`, a beacon). A plus
participant's page reads the knocks (`GET .../lobby`), admits or declines (`POST .../admit`,
`.../decline`), removes someone (`POST .../remove`) and ends the call for everyone (`POST
.../end`).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.plugin import CallRefusal as Refusal
from teleconsult.plugin import (
    InvalidRequest,
    NotFound,
    ProviderPages,
    mark_sensitive,
    refused,
    same_origin,
    seat_info,
)

from .admission import admit, janus_token, seated
from .lobby import POLL, Decision, Wait
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
MAX_USER_CHARS = 200
"""A knock's id: the waiting participant's provider user id."""
ASKED_AGAIN = {"waiting": True}
"""The body of a waiting page's next `POST .../token`."""


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
    from now on), the room, Janus's public URL, and the ICE servers for the link's window.
    With the lobby, a participant below plus not admitted yet waits: 202, no token."""
    admitted = await PAGES.admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, seat = admitted
    page = provider.call_page
    entry = await provider.calls.enter(seat, await _asked_again(request))
    if isinstance(entry, Wait):
        seconds = POLL.total_seconds()
        return web.json_response(
            {"waiting": True, "since": entry.since, "retryAfterMs": int(seconds * 1000)},
            status=202,
            headers={**page.no_store, "Retry-After": str(int(seconds))},
        )
    token = None if entry != "enter" else await janus_token(provider, seat)
    if token is None:  # declined, or the call ended for everyone meanwhile
        why = "declined" if entry == "declined" else "ended"
        refusal = Refusal(why, 403 if why == "declined" else 410, seat.language)
        return refused(request, page, refusal, html=False)
    mark_sensitive([token])
    ice = page.ice(_moment(seat.credential.expires_at))
    return web.json_response(
        {
            "token": token,
            "room": room_number("join a room", seat.credential.room_id),
            "server": provider.options.public_url,
            "display": seat.me.provider_user_id,
            **ice,
        },
        headers=page.no_store,
    )


async def _asked_again(request: web.Request) -> bool:
    """A waiting page's poll (`{"waiting": true}`), or a fresh request (no body)."""
    if not request.content_length:
        return False
    try:
        body = await request.json()
    except ValueError:
        body = None
    if body != ASKED_AGAIN:
        raise InvalidRequest('The body must be empty, or {"waiting": true} once told to wait.')
    return True


async def leave(request: web.Request) -> web.Response:
    """`POST .../leave` (no body, the page's beacon): a waiting page left or closed, so its
    knock is withdrawn at once rather than after `KNOCK_TTL`; 204, whether it waited or not."""
    admitted = await PAGES.admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, seat = admitted
    page = provider.call_page
    if not same_origin(request, provider.options.page_url):
        return refused(request, page, Refusal("invalid", 403, seat.language), html=False)
    if not provider.calls.lobby:
        raise NotFound("The lobby is off (CALL_PAGE_LOBBY=false): nobody waits to be let in.")
    await provider.calls.withdraw(seat)
    return web.Response(status=204, headers=page.no_store)


async def lobby(request: web.Request) -> web.Response:
    """`GET .../lobby`: who waits to be let in (their participant id, name, since when), for
    a plus participant's page, read again every `retryAfterMs`."""
    asked = await PAGES.plus_page(
        request, _page_url, "Only a plus participant's page sees who waits to be let in."
    )
    if isinstance(asked, web.Response):
        return asked
    provider, seat = asked
    if not provider.calls.lobby:
        raise NotFound("The lobby is off (CALL_PAGE_LOBBY=false): nobody waits to be let in.")
    names = {p.provider_user_id: p.display_name for p in seat.roster.participants}
    call = await provider.calls.get(seat.credential.room_id)
    waiting = [
        {"id": user, "name": names[user], "since": since}
        for user, since in call.knocks(provider.clock())
        if user in names
    ]
    body = {"waiting": waiting, "retryAfterMs": int(POLL.total_seconds() * 1000)}
    return web.json_response(body, headers=provider.call_page.no_store)


async def decide(request: web.Request, decision: Decision) -> web.Response:
    """`POST .../admit` or `.../decline` `{"peer": <participant id>}`: a plus participant's
    page decides on someone waiting; 204, 404 when they no longer wait."""
    asked = await PAGES.about_peer(
        request,
        _page_url,
        MAX_USER_CHARS,
        "Only a plus participant's page may admit or decline someone waiting.",
    )
    if isinstance(asked, web.Response):
        return asked
    provider, seat, user = asked
    if not await provider.calls.decide(seat, user, decision):
        raise NotFound("That participant is no longer waiting to be let in.")
    return web.Response(status=204, headers=provider.call_page.no_store)


async def end_call(request: web.Request) -> web.Response:
    """`POST .../end`: a plus participant's page ends the call for everyone (the shared
    page's "End call for everyone"): every page leaves Janus at once, and the links open
    the ended page from now on; 204, again on a retry."""
    asked = await PAGES.plus_page(
        request,
        _page_url,
        "Only a plus participant's page may end the call for everyone.",
        admit_of=lambda provider: functools.partial(seated, provider),
    )
    if isinstance(asked, web.Response):
        return asked
    provider, seat = asked
    await provider.end_call(seat)
    return web.Response(status=204, headers=provider.call_page.no_store)


async def remove_peer(request: web.Request) -> web.Response:
    """`POST .../remove {"peer": id}` (the shared page's Remove, `removal.js`): a plus
    participant's page removes the participant of a tile (its Janus participant id) from the
    call and keeps them out, as `PUT .../block` does; 204."""
    asked = await PAGES.removal(request, _page_url, MAX_PEER_CHARS)
    if isinstance(asked, web.Response):
        return asked
    provider, seat, peer = asked
    if not peer.isdigit():
        raise NotFound("That participant already left the call.")
    await provider.remove_peer(request, seat, int(peer))
    return web.Response(status=204, headers=provider.call_page.no_store)


def routes() -> list[web.AbstractRouteDef]:
    path = PAGES.page_path
    more = [
        web.post(path + "/token", call_token),
        web.post(path + "/remove", remove_peer),
        web.get(path + "/lobby", lobby, allow_head=False),
        web.post(path + "/leave", leave),
        web.post(path + "/admit", functools.partial(decide, decision="admit")),
        web.post(path + "/decline", functools.partial(decide, decision="decline")),
        web.post(path + "/end", end_call),
    ]
    return PAGES.routes(page=call_page, info=call_info, more=more)


def _page_url(provider: JanusVideo) -> str:
    return provider.options.page_url


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
