"""LiveKit's webhooks in, verified by the `livekit-api` SDK's own `WebhookReceiver`.

LiveKit posts each event with a JWT in `Authorization`, signed with the API
secret, whose `sha256` claim is the body's hash: the receiver checks both (and
the token's expiry). The event's `createdAt` must be within EVENT_MAX_AGE of the
service's clock, or it is refused as a replay. `participant_joined`,
`participant_left`, `room_started` and `room_finished` are what the core records;
the others (tracks, egress) are accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from livekit import api

from teleconsult.plugin import (
    CALL_ENDED,
    CALL_STARTED,
    EVENT_MAX_AGE,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    ProviderEvent,
    Unauthorized,
)
from teleconsult_livekit import identities

EVENT_KINDS = {
    "participant_joined": PARTICIPANT_JOINED,
    "participant_left": PARTICIPANT_LEFT,
    "room_started": CALL_STARTED,
    "room_finished": CALL_ENDED,
}


def verify(
    receiver: api.WebhookReceiver, headers: Mapping[str, str], body: bytes, now: datetime
) -> list[ProviderEvent]:
    token = headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token:
        raise Unauthorized("A LiveKit event must carry its signed token in Authorization.")
    try:
        event = receiver.receive(body.decode(), token)
    except Exception:  # the SDK raises bare Exceptions and jwt errors alike
        raise Unauthorized(
            "The LiveKit event's token is not signed with the API secret, has expired, or "
            "does not carry this body's hash."
        ) from None
    minutes = int(EVENT_MAX_AGE.total_seconds() // 60)
    if abs(now.timestamp() - event.created_at) > EVENT_MAX_AGE.total_seconds():
        # Checked in seconds first: a `createdAt` past the year 9999 makes no date.
        try:
            created = datetime.fromtimestamp(event.created_at, UTC)
        except (OverflowError, OSError, ValueError):
            raise Unauthorized(
                f"The LiveKit event's createdAt is not a time within {minutes} minutes from "
                "now: refused as a replay."
            ) from None
        raise Unauthorized(
            f"The LiveKit event was created at {created.isoformat()}, more than "
            f"{minutes} minutes from now: refused as a replay."
        )
    created = datetime.fromtimestamp(event.created_at, UTC)
    kind = EVENT_KINDS.get(event.event)
    if kind is None or not event.room.name:
        return []
    joined_or_left = kind in (PARTICIPANT_JOINED, PARTICIPANT_LEFT)
    user = identities.user_of(event.participant.identity) if joined_or_left else None
    return [ProviderEvent(kind, event.room.name, created, user or None, event.id)]
