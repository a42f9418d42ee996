"""teleconsult_webrtc: video calls with no vendor, browser to browser (WebRTC), 2 to 4 people.

The provider `webrtc` keeps its rooms, who is connected, and the signaling
between browsers in the service's store (`ProviderStorage`), so every replica
serves every call; it serves the call page, its assets and its WebSocket through
the `register_routes` hook. Media never passes through teleconsult: it goes from
browser to browser, or through a TURN server when no direct path exists.

- `provider.py`: the provider (room lifecycle, room details, who may open a link);
- `links.py`: the signed per-participant credentials in the links;
- `rooms.py`: room documents, presence and mailboxes in the storage;
- `signaling.py`: the WebSocket protocol, relayed through the mailboxes;
- `pages.py`: the page, its info, its assets, the refusals;
- `ice.py`: STUN and TURN servers, TURN credentials;
- `texts.py`: the page's texts in English and Italian;
- `assets/`: call.html, call.js, call.css (no build step, nothing from a CDN).
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from teleconsult.plugin import (
    ConfigurationError,
    ProviderContext,
    Setting,
    SettingsReader,
    VideoProviderPlugin,
    hookimpl,
)

from . import links
from .ice import IceServers
from .pages import routes
from .provider import CALL_PATH, Options, WebRTCVideo
from .rooms import NAME
from .signaling import Timing

__all__ = ["SETTINGS", "WebRTCVideo", "create"]

SETTINGS = (
    Setting(
        "WEBRTC_PUBLIC_URL",
        "",
        "`webrtc` provider: where its links point, as participants' browsers reach this service; "
        "unset = `http://<HTTP_HOST>:<HTTP_PORT>` (`0.0.0.0` becomes `127.0.0.1`); https in "
        "production (browsers give the camera to secure pages only), http only to a loopback host",
    ),
    Setting(
        "WEBRTC_LINK_SECRET",
        "",
        "`webrtc` provider: the key that signs every link (at least 32 characters, never logged); "
        "unset = one generated once and kept in the store, shared by every replica. Changing it "
        "invalidates the links handed out (the next poll hands out new ones)",
        secret=True,
    ),
    Setting(
        "WEBRTC_LINK_GRACE_MS",
        "900000",
        "`webrtc` provider: how long after `end_date` a link still opens its call, for rooms with "
        "a duration (`UNLIMITED_TELECONSULTATION=false`)",
    ),
    Setting(
        "WEBRTC_MAX_LIFETIME_MS",
        "86400000",
        "`webrtc` provider: for rooms without a duration, how long after `start_date` a link opens "
        "its call",
    ),
    Setting(
        "WEBRTC_STUN_URLS",
        "",
        "`webrtc` provider: comma-separated `stun:` or `stuns:` URLs handed to the browsers (to "
        "learn their public address)",
    ),
    Setting(
        "WEBRTC_TURN_URLS",
        "",
        "`webrtc` provider: comma-separated `turn:` or `turns:` URLs of a TURN server that relays "
        "media when browsers cannot reach each other; needs `WEBRTC_TURN_SECRET`",
    ),
    Setting(
        "WEBRTC_TURN_SECRET",
        "",
        "`webrtc` provider: the TURN server's shared secret (coturn's `static-auth-secret`); each "
        "page gets credentials valid as long as its link (never logged)",
        secret=True,
    ),
    Setting(
        "WEBRTC_POLL_INTERVAL_MS",
        "250",
        "`webrtc` provider: how often a replica takes each connected page's signaling mailbox "
        "from the store: call set-up latency against store reads (docs/operations.md)",
    ),
    Setting(
        "WEBRTC_HEARTBEAT_MS",
        "10000",
        "`webrtc` provider: how often each connected page's presence is written to its room; a "
        "page whose replica stopped writing for three intervals is dropped",
    ),
)
"""Every variable of the webrtc provider, as the README and `teleconsult --help` show them."""

DAY_MS = 24 * 3600 * 1000


def options(context: ProviderContext) -> Options:
    read = SettingsReader(context.environ, SETTINGS)
    return Options(
        public_url=read.url("WEBRTC_PUBLIC_URL") or context.server_url,
        link_secret=links.configured_secret(read.secret("WEBRTC_LINK_SECRET")),
        link_grace=_milliseconds(read, "WEBRTC_LINK_GRACE_MS", 0, 7 * DAY_MS),
        max_lifetime=_milliseconds(read, "WEBRTC_MAX_LIFETIME_MS", 60_000, 30 * DAY_MS),
        timing=Timing(
            poll_seconds=read.integer("WEBRTC_POLL_INTERVAL_MS", minimum=10, maximum=5000) / 1000,
            heartbeat_seconds=read.integer("WEBRTC_HEARTBEAT_MS", minimum=100, maximum=600_000)
            / 1000,
        ),
        ice=IceServers.read(read),
    )


def create(context: ProviderContext) -> WebRTCVideo:
    if context.storage is None or context.roster is None:
        raise ConfigurationError("the webrtc provider needs the service's store (set by the app).")
    return WebRTCVideo(
        options(context), context.storage, context.roster, context.clock, context.report_events
    )


def _milliseconds(read: SettingsReader, name: str, minimum: int, maximum: int) -> timedelta:
    return timedelta(milliseconds=read.integer(name, minimum=minimum, maximum=maximum))


@hookimpl
def register_video_providers() -> list[VideoProviderPlugin]:
    return [
        VideoProviderPlugin(
            name=NAME,
            create=create,
            description="Browser-to-browser calls for 2 to 4 people, state in the store.",
            link_markers=(CALL_PATH,),
            settings=SETTINGS,
            check_settings=options,
        )
    ]


@hookimpl
def register_routes() -> list[web.AbstractRouteDef]:
    return routes()
