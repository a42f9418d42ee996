"""The provider's description of a room, for GET's `details`, kept a few seconds.

Participants poll, and a room changes little: each replica reuses a description
for DETAILS_TTL_SECONDS rather than asking the provider at every poll. It is a
cache of what the provider says, not of our records (those are read at every
request). A provider failure costs the details, not the answer; a provider
without the `RoomDetails` capability gives none.
"""

from __future__ import annotations

import logging
import time

from teleconsult.errors import ServiceError
from teleconsult.providers.protocols import RoomDetails, VideoProvider

log = logging.getLogger(__name__)

DETAILS_TTL_SECONDS = 10.0
DETAILS_CACHE_SIZE = 10_000


class RoomDetailsCache:
    def __init__(self, video: VideoProvider) -> None:
        self.describer = video if isinstance(video, RoomDetails) else None
        self._details: dict[str, tuple[float, dict[str, object]]] = {}

    async def describe(self, provider_room_id: str) -> dict[str, object] | None:
        if self.describer is None:
            return None
        now = time.monotonic()
        cached = self._details.get(provider_room_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            details = await self.describer.describe_room(provider_room_id)
        except ServiceError as error:
            log.warning("room details unavailable for %s: %s", provider_room_id, error.message)
            return None
        if len(self._details) > DETAILS_CACHE_SIZE:
            self._details.clear()
        self._details[provider_room_id] = (now + DETAILS_TTL_SECONDS, details)
        return details
