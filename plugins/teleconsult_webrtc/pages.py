"""The call page, its info, its assets and its WebSocket, served next to the API.

Every route finds the running provider under `VIDEO_PROVIDER` and answers as if
it did not exist when another provider runs. The page is static HTML with no
names in it; the names come with the info, read from the roster at each request.
A link that opens nothing gets a short HTML page in the participant's language
(404 not valid, 403 not open yet, 410 expired or ended), and its WebSocket is
refused before the upgrade with the same status.
"""

from __future__ import annotations

import hashlib
import logging
from html import escape
from http import HTTPStatus
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.plugin import VIDEO_PROVIDER, ServiceError, mark_sensitive

from . import texts
from .provider import CALL_PATH, Refusal, Seat, WebRTCVideo
from .rooms import MAX_PARTICIPANTS, iso
from .signaling import HARD_MAX_MESSAGE_BYTES, PING_SECONDS, Connection, Member

log = logging.getLogger("teleconsult.webrtc")

PAGE_PATH = CALL_PATH + "{credential}"
ASSETS_PATH = "/webrtc/assets/"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(), geolocation=()",
    "X-Robots-Tag": "noindex, nofollow",
}
NO_STORE = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
"""Pages, info and refusals: they hold a credential's outcome or names."""

_FILES = resources.files(__package__) / "assets"
PAGE = (_FILES / "call.html").read_text(encoding="utf-8")
ASSETS = {
    name: ((_FILES / name).read_bytes(), content_type)
    for name, content_type in (("call.js", "text/javascript"), ("call.css", "text/css"))
}
ETAGS = {
    name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"' for name, (body, _) in ASSETS.items()
}


async def call_page(request: web.Request) -> web.Response:
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    _, found = admitted
    return web.Response(
        text=PAGE.replace('lang="en"', f'lang="{found.language}"', 1),
        content_type="text/html",
        charset="utf-8",
        headers=NO_STORE,
    )


async def call_info(request: web.Request) -> web.Response:
    """What the page shows: names (from the record, never in the URL), the schedule, its
    texts, and the ICE servers (TURN credentials as long as the link)."""
    admitted = await _admit(request, html=False)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    roster = found.roster
    return web.json_response(
        {
            "language": found.language,
            "texts": texts.TEXTS[found.language],
            "self": {"name": found.me.display_name, "isAdmin": found.me.is_admin},
            "participants": [
                {"name": p.display_name, "isAdmin": p.is_admin, "self": p is found.me}
                for p in roster.participants
            ],
            "schedule": {
                "opensAt": iso(roster.opens_at),
                "startsAt": iso(roster.starts_at),
                "endsAt": iso(roster.ends_at),
                "limited": roster.limited,
            },
            "iceServers": provider.options.ice.for_browser(found.credential.expires_at),
            "maxParticipants": MAX_PARTICIPANTS,
        },
        headers=NO_STORE,
    )


async def call_socket(request: web.Request) -> web.StreamResponse:
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    provider, found = admitted
    if not _same_origin(request, provider.options.public_url):
        return _refusal(Refusal("invalid", 403, found.language))
    ws = web.WebSocketResponse(
        heartbeat=PING_SECONDS,
        max_msg_size=HARD_MAX_MESSAGE_BYTES,
        compress=False,  # small messages; no decompression to abuse
    )
    await ws.prepare(request)
    members = {
        p.provider_user_id: Member(p.display_name, p.is_admin) for p in found.roster.participants
    }
    connection = Connection(
        ws,
        provider.rooms,
        found.credential.room_id,
        found.me.provider_user_id,
        members,
        provider.options.timing,
        provider.connections,
        found.credential.expires_at,
    )
    await connection.serve()
    return ws


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    body, content_type = ASSETS[name]
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": ETAGS[name]}
    if request.headers.get("If-None-Match") == ETAGS[name]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get(PAGE_PATH, call_page),
        web.get(PAGE_PATH + "/info", call_info),
        web.get(PAGE_PATH + "/ws", call_socket, allow_head=False),
        web.get(ASSETS_PATH + "{name}", asset),
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
    credential = request.match_info["credential"]
    mark_sensitive([credential])
    provider = _provider(request)
    refusal = Refusal("invalid", 404)
    if provider is not None:
        try:
            found = await provider.admit(credential)
        except ServiceError as error:  # the store is down: say so, in the page's form
            log.warning("webrtc: a call link could not be checked: %s", error.message)
            found = Refusal("connection_lost", 503)
        if isinstance(found, Seat):
            mark_sensitive(p.display_name for p in found.roster.participants)
            return provider, found
        refusal = found
    if refusal.language is None:  # a link that names no participant: the browser's language
        language = texts.from_header(request.headers.get("Accept-Language"))
        refusal = Refusal(refusal.why, refusal.status, language)
    return _refusal(refusal) if html else _refusal_json(refusal)


def _refusal(refusal: Refusal) -> web.Response:
    language = refusal.language or texts.DEFAULT_LANGUAGE
    said = texts.TEXTS[language]
    body = (
        "<!doctype html>\n"
        f'<html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(said['title'])}</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="../assets/call.css"></head>'
        f'<body><main class="notice"><h1>{escape(said["title"])}</h1>'
        f'<p id="refused" data-reason="{refusal.why}">{escape(said[refusal.why])}</p>'
        "</main></body></html>\n"
    )
    return web.Response(
        status=refusal.status,
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers=NO_STORE,
    )


def _refusal_json(refusal: Refusal) -> web.Response:
    said = texts.TEXTS[refusal.language or texts.DEFAULT_LANGUAGE]
    return web.json_response(
        {
            "statusCode": refusal.status,
            "error": HTTPStatus(refusal.status).phrase,
            "message": said[refusal.why],
            "reason": refusal.why,
        },
        status=refusal.status,
        headers=NO_STORE,
    )


def _same_origin(request: web.Request, public_url: str) -> bool:
    """A browser's WebSocket must come from the page's own origin (this host, or the public
    URL's): another site's page holding a stolen link cannot drive the call from there."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser; the credential is still required
        return True
    host = urlsplit(origin).netloc.lower()
    return host in (request.host.lower(), urlsplit(public_url).netloc.lower())
