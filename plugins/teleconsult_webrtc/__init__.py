"""teleconsult_webrtc: video calls with no vendor, browser to browser (WebRTC), 2 to 4 people.

The provider `webrtc` keeps its rooms, who is connected, and the signaling
between browsers in the service's store (`ProviderStorage`), so every replica
serves every call; it serves the call page, its assets and its WebSocket through
the `register_routes` hook. Media never passes through teleconsult: it goes from
browser to browser, or through a TURN server when no direct path exists.

- `provider.py`: the provider (room lifecycle, room details, who may open a link);
- `rooms.py`: room documents, presence and mailboxes in the storage;
- `signaling.py`: the WebSocket protocol, relayed through the replica's hub;
- `hub.py`: per replica, delivers to its pages in memory or through the store's mailboxes,
  and says which pages it serves (one query and one write per interval, not per page);
- the links' signed per-participant credentials: the core's (`teleconsult.plugin.LinkSigner`);
- `pages.py`: the routes of the call page (`teleconsult.plugin.CallPage`, shared with other
  providers, with its ICE servers): the page, its info, its assets and this provider's
  transport, the refusals;
- `settings.py`: its variables (`WebRTCSettings`);
- `assets/mesh.js`: the page's transport for this provider (the full mesh), loaded by the
  shared page's UI (no build step, nothing from a CDN).
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from teleconsult.plugin import (
    ProviderContext,
    VideoProviderPlugin,
    hookimpl,
    stored_state,
)

from .hub import Timing
from .pages import routes
from .provider import CALL_PATH, Options, WebRTCVideo
from .rooms import NAME
from .settings import WebRTCSettings

__all__ = ["WebRTCSettings", "WebRTCVideo", "create"]


def options(context: ProviderContext[WebRTCSettings]) -> Options:
    settings = context.settings
    return Options(
        public_url=settings.public_url or context.server_url,
        link_secret=settings.signing_key(),
        link_grace=timedelta(milliseconds=settings.link_grace_ms),
        max_lifetime=timedelta(milliseconds=settings.max_lifetime_ms),
        timing=Timing(
            poll_seconds=settings.poll_interval_ms / 1000,
            heartbeat_seconds=settings.heartbeat_ms / 1000,
        ),
        call_page=context.call_page,
    )


def create(context: ProviderContext[WebRTCSettings]) -> WebRTCVideo:
    storage, roster = stored_state(context.storage, context.roster, NAME)
    video = WebRTCVideo(options(context), storage, roster, context.clock, context.report_events)
    video.remove_participant = context.remove_participant
    return video


@hookimpl
def register_video_providers() -> list[VideoProviderPlugin[WebRTCSettings]]:
    return [
        VideoProviderPlugin(
            name=NAME,
            create=create,
            description="Browser-to-browser calls for 2 to 4 people, state in the store.",
            link_markers=(CALL_PATH,),
            settings=WebRTCSettings,
        )
    ]


@hookimpl
def register_routes() -> list[web.AbstractRouteDef]:
    return routes()
