"""Kaleyra's webhooks in: the `bandyer-signature` scheme, and the events the core uses.

Kaleyra signs each webhook with `bandyer-signature: t=<unix seconds>,v0=<hex>`,
the HMAC-SHA256 of `"<t>.<raw body>"` keyed with the API key, around the
envelope `{event, event_version, namespace, timestamp, data}` (documented,
shared/spec/kaleyra.md). The names of the call and participant events and the
fields of their `data` are not documented there: they are the guesses (G) in
`EVENT_KINDS` and `_read`, one place each, to correct after a first contact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from teleconsult.plugin import (
    CALL_ENDED,
    CALL_STARTED,
    EVENT_MAX_AGE,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    InvalidRequest,
    ProviderEvent,
    Unauthorized,
)

SIGNATURE_HEADER = "bandyer-signature"
MALFORMED = f"The {SIGNATURE_HEADER} header must read t=<timestamp>,v0=<hex>."
TIMESTAMP = re.compile(r"[0-9]{1,10}")
"""ASCII digits, few enough for int() and a date (10 digits reach the year 2286)."""
DIGEST = re.compile(r"[0-9a-fA-F]{64}")
"""A hex SHA-256, ASCII only (`hmac.compare_digest` refuses other text with a TypeError)."""
EVENT_KINDS = {
    "on_call_started": CALL_STARTED,  # G
    "on_call_ended": CALL_ENDED,  # G
    "on_participant_joined": PARTICIPANT_JOINED,  # G
    "on_participant_left": PARTICIPANT_LEFT,  # G
}
"""Kaleyra's event names for what the core records; others (`on_room_deleted`,
`on_call_incoming`, `on_recording_available`) are accepted and ignored."""


def sign(api_key: str, body: bytes, timestamp: int) -> str:
    """The `bandyer-signature` value of `body` sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(api_key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v0={digest.hexdigest()}"


def verify(
    api_key: str, headers: Mapping[str, str], body: bytes, now: datetime
) -> list[ProviderEvent]:
    """The events of a request signed with `api_key` within EVENT_MAX_AGE of `now`."""
    header = headers.get(SIGNATURE_HEADER)
    if not header:
        raise Unauthorized(f"A Kaleyra event must carry the {SIGNATURE_HEADER} header.")
    timestamp, signature = _signature_parts(header)
    expected = sign(api_key, body, timestamp).partition(",v0=")[2]
    if not hmac.compare_digest(expected, signature.lower()):
        raise Unauthorized("The Kaleyra event's signature does not match its body.")
    signed_at = datetime.fromtimestamp(timestamp, UTC)
    if abs(now - signed_at) > EVENT_MAX_AGE:
        raise Unauthorized(
            f"The Kaleyra event was signed at {signed_at.isoformat()}, more than "
            f"{int(EVENT_MAX_AGE.total_seconds() // 60)} minutes from now: refused as a replay."
        )
    try:
        envelope = json.loads(body)
    except ValueError:
        raise InvalidRequest("The Kaleyra event is not JSON.") from None
    if not isinstance(envelope, dict):
        raise InvalidRequest("The Kaleyra event must be a JSON object.")
    kind = EVENT_KINDS.get(str(envelope.get("event")))
    return [] if kind is None else [_read(kind, envelope, signed_at)]


def _signature_parts(header: str) -> tuple[int, str]:
    """`t` and `v0` of the header, each exactly once and well formed (other parts are
    ignored), or a 401: until its signature matches, the header is anybody's text."""
    parts: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        parts.setdefault(name, []).append(value)
    timestamps, signatures = parts.get("t", []), parts.get("v0", [])
    if (
        len(timestamps) != 1
        or len(signatures) != 1
        or not TIMESTAMP.fullmatch(timestamps[0])
        or not DIGEST.fullmatch(signatures[0])
    ):
        raise Unauthorized(MALFORMED)
    return int(timestamps[0]), signatures[0]


def _read(kind: str, envelope: dict[str, Any], signed_at: datetime) -> ProviderEvent:
    data = envelope.get("data")
    room = data.get("room_id") if isinstance(data, dict) else None  # G
    user = data.get("user_id") if isinstance(data, dict) else None  # G
    if not isinstance(room, str) or (
        kind in (PARTICIPANT_JOINED, PARTICIPANT_LEFT) and not isinstance(user, str)
    ):
        raise InvalidRequest(
            f"The Kaleyra event {envelope.get('event')!r} lacks data.room_id"
            + (" or data.user_id." if kind in (PARTICIPANT_JOINED, PARTICIPANT_LEFT) else ".")
        )
    try:
        at = datetime.fromisoformat(str(envelope["timestamp"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        at = signed_at
    return ProviderEvent(
        kind=kind,
        provider_room_id=room,
        at=at if at.tzinfo else at.replace(tzinfo=UTC),
        provider_user_id=user if isinstance(user, str) else None,
        event_id=str(envelope.get("id") or ""),
    )
