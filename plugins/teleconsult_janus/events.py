"""Janus's HTTP event handler (`janus.eventhandler.sampleevh`) in: attendance from the real
server.

Janus posts with basic credentials (`backend_user` / `backend_pwd`), checked here in constant
time against JANUS_EVENTS_USER / JANUS_EVENTS_PASSWORD (unset password: everything is
refused). Who joined is read from the token the page's handle was attached with (Janus
accepted it, and its last entry, `teleconsult.<room>.<user>`, is signed): the `attached`
event comes first, so the handle's participant is kept a few hours in the provider's
storage, then the videoroom's `joined` names the handle and its feed, kept too, and
`leaving` names only the feed. A page cannot pass for someone else by choosing its display
name. Janus's core event `started` (it restarted, and forgot its rooms) is read too
(`started`): the provider then makes its live rooms again at once (`repair.py`). The bodies
carry tokens: they are never logged.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from teleconsult.plugin import (
    CALL_ENDED,
    CALL_STARTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    InvalidRequest,
    ProviderEvent,
    ProviderStorage,
    Unauthorized,
    VersionConflict,
)

from .client import VIDEOROOM

SESSION_EVENT, HANDLE_EVENT, PLUGIN_EVENT, CORE_EVENT = 1, 2, 64, 256
KEEP = timedelta(hours=12)
"""How long a handle's or a feed's participant is kept: longer than any call's stay."""
MARK = "teleconsult."


def check_credentials(headers: Mapping[str, str], user: str, password: str) -> None:
    """Basic credentials equal to the configured ones, compared in constant time."""
    given = headers.get("Authorization", "")
    scheme, _, encoded = given.partition(" ")
    try:
        name, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        name, secret = "", ""
    matches = hmac.compare_digest(name.encode(), user.encode()) & hmac.compare_digest(
        secret.encode(), password.encode()
    )
    if not password or scheme.lower() != "basic" or not matches:
        raise Unauthorized(
            "Janus's events must carry the event handler's basic credentials "
            "(backend_user and backend_pwd, as JANUS_EVENTS_USER and JANUS_EVENTS_PASSWORD)."
        )


def parse(body: bytes) -> list[dict[str, Any]]:
    """The events of one post: an array when Janus groups them, else one object."""
    try:
        found = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("Janus's events must be JSON.", path="body") from None
    events = found if isinstance(found, list) else [found]
    return [event for event in events if isinstance(event, dict)]


def started(events: list[dict[str, Any]]) -> bool:
    """Whether Janus says it (re)started: a core event `started` (the handler's `core`)."""
    return any(
        event.get("type") == CORE_EVENT
        and isinstance(event.get("event"), dict)
        and event["event"].get("status") == "started"
        for event in events
    )


async def read(storage: ProviderStorage, events: list[dict[str, Any]]) -> list[ProviderEvent]:
    """The moments teleconsult records, in order; the rest is accepted and ignored."""
    moments: list[ProviderEvent] = []
    for event in events:
        kind, at = event.get("type"), _moment(event.get("timestamp"))
        detail = event.get("event")
        if not isinstance(detail, dict) or at is None:
            continue
        if kind == HANDLE_EVENT and detail.get("name") == "attached":
            await _remember_handle(storage, event.get("handle_id"), detail.get("token"))
        elif kind == PLUGIN_EVENT and detail.get("plugin") == VIDEOROOM:
            data = detail.get("data")
            if isinstance(data, dict):
                moments += await _videoroom(storage, event.get("handle_id"), data, at)
    return moments


async def _videoroom(
    storage: ProviderStorage, handle: object, data: dict[str, Any], at: datetime
) -> list[ProviderEvent]:
    what, room, feed = data.get("event"), str(data.get("room")), data.get("id")
    if what == "destroyed":
        return [ProviderEvent(CALL_ENDED, room, at)]
    if what == "joined" and isinstance(handle, int) and isinstance(feed, int):
        found = await storage.get(f"handle/{handle}")
        if found is None or found.document["room"] != room:
            return []
        user = str(found.document["user"])
        first = not await storage.find(f"feed/{room}/")
        await _keep(storage, f"feed/{room}/{feed}", {"user": user})
        joined = ProviderEvent(PARTICIPANT_JOINED, room, at, user)
        return [ProviderEvent(CALL_STARTED, room, at), joined] if first else [joined]
    if what == "leaving" and isinstance(feed, int):
        found = await storage.get(f"feed/{room}/{feed}")
        if found is None:
            return []
        await storage.delete(f"feed/{room}/{feed}")
        return [ProviderEvent(PARTICIPANT_LEFT, room, at, str(found.document["user"]))]
    return []


async def _remember_handle(storage: ProviderStorage, handle: object, token: object) -> None:
    """The participant a handle's token names (`...,teleconsult.<room>.<user>:<signature>`)."""
    if not isinstance(handle, int) or not isinstance(token, str):
        return
    entries = token.partition(":")[0].split(",")
    mark = next((e for e in entries if e.startswith(MARK)), None)
    if mark is None:
        return  # the service's own token
    room, _, user = mark.removeprefix(MARK).partition(".")
    if room and user:
        await _keep(storage, f"handle/{handle}", {"room": room, "user": user})


async def _keep(storage: ProviderStorage, key: str, document: dict[str, str]) -> None:
    """Written once: Janus may post an event again (its retransmissions)."""
    with contextlib.suppress(VersionConflict):
        await storage.put(key, document, None, KEEP)


def _moment(microseconds: object) -> datetime | None:
    if not isinstance(microseconds, int) or isinstance(microseconds, bool):
        return None
    try:
        return datetime.fromtimestamp(microseconds / 1_000_000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
