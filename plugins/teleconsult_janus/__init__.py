"""teleconsult_janus: video calls through Janus's videoroom, an SFU run beside the service.

Janus (Meetecho's WebRTC server, in Debian) is a separate process the hospital runs: each
participant publishes once and receives the others through it, so a call is not limited
to the mesh's four people and media never goes browser to browser. The service speaks
Janus's HTTP API (`client.py`) with tokens it signs itself (`tokens.py`, Janus's
`token_auth_secret`), creates private rooms under ids it chose (`provider.py`), and hands
each participant a link to its own call page, signed as `webrtc`'s are.

- `provider.py`: `JanusVideo`, the room lifecycle and `RoomDetails`;
- `client.py`: Janus's HTTP API, failures named by operation;
- `tokens.py`: Janus's signed tokens, and the links' key derived from the same secret;
- `admission.py`: who a link lets in, and the Janus token a page gets once it may enter;
- `lobby.py`: the lobby (who waits, admitted, declined) and the end of a call, in storage;
- `pages.py`: the call page's routes (the shared `CallPage`), its info and its token;
- `repair.py`: the live rooms Janus forgot in a restart, made again (`RoomRepair`);
- `settings.py`: its variables (`JanusSettings`);
- `assets/janus.js`: the page's transport for this provider (publish once, subscribe to the
  others through Janus), loaded by the shared page's UI.
"""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web

from teleconsult.plugin import (
    OutboundClient,
    ProviderContext,
    VideoProviderPlugin,
    hookimpl,
    stored_state,
)

from .client import PROVIDER, JanusClient
from .pages import routes
from .provider import CALL_PATH, JanusVideo
from .settings import JanusSettings
from .tokens import SERVICE_SECONDS, signed_token

__all__ = ["JanusSettings", "JanusVideo", "create"]


def create(context: ProviderContext[JanusSettings]) -> JanusVideo:
    storage, roster = stored_state(context.storage, context.roster, PROVIDER)
    options = context.settings.options(context.server_url)
    clock = context.clock

    def service_token() -> str:
        # Janus checks it against its own clock: the real time, whatever the service is told.
        return signed_token(options.token_secret, int(time.time()) + SERVICE_SECONDS)

    outbound = OutboundClient(PROVIDER, aiohttp.ClientSession(), options.url, options.policy)
    client = JanusClient(outbound, service_token)
    video = JanusVideo(options, client, storage, roster, context.call_page, clock)
    video.remove_participant = context.remove_participant
    video.calls.report_events = context.report_events
    return video


@hookimpl
def register_video_providers() -> list[VideoProviderPlugin[JanusSettings]]:
    return [
        VideoProviderPlugin(
            name=PROVIDER,
            create=create,
            description="Janus's videoroom (an SFU beside the service): private rooms, signed "
            "tokens, 2 to JANUS_MAX_PARTICIPANTS people.",
            link_markers=(CALL_PATH,),
            settings=JanusSettings,
        )
    ]


@hookimpl
def register_routes() -> list[web.AbstractRouteDef]:
    return routes()
