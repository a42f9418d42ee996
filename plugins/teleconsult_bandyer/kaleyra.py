"""The Kaleyra Video REST API v2, as far as it is known: every path and field name, once.

Nothing here has been checked against the live API (see shared/spec/kaleyra.md):
when a first contact corrects a path or a field, the correction is one line here.
Request bodies are built and responses read by the small functions below, so the
client never spells a field name itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from teleconsult.plugin import TOOLS, RoomSpec, UnexpectedAnswer

API_KEY_HEADER = "apikey"

# Paths (relative to BANDYER_BASE_URL).
USERS = "/v2/users"
ROOMS = "/v2/rooms"
ROOM = "/v2/rooms/{room_id}"
SDK_CREDENTIALS = "/v2/sdk/credentials"
UPLOADS = "/v2/uploads"
UPLOAD = "/v2/uploads/{key}"
VIRTUAL_BACKGROUNDS = "/v2/company/virtual-background"
COMPANY = "/v2/company"

# Field names.
USER_ID = "user_id"
ROLE = "role"
ID = "id"
PARTICIPANTS = "participants"
IS_ADMIN = "is_admin"
FIELD_TOOLS = "tools"
LINK = "link"
DURATION = "duration"
RECORDING = "recording"
LIVE = "live"
CALL_TYPE = "call_type"
ROOM_ID_QUERY = "room_id"
UPLOAD_LIST = "uploads"
UPLOAD_KEY = "key"
EXPIRES_IN = "expires_in"
ACCESS_TOKEN = "access_token"  # noqa: S105 - a field name, not a secret
EXPIRES_AT = "expires_at"
VIRTUAL_BACKGROUND_FIELD = "virtual_background"
BACKGROUND_ALIAS = "background_alias"

# Join links: https://<company>.bandyer.com/<region>/direct-rest-call-handler/<code>.
LINK_PATH_MARKER = "/direct-rest-call-handler/"

# Link query parameters (documented by Kaleyra).
LINK_LANGUAGE = "l"
LINK_BACKGROUND = "vb"
LINK_BACKGROUND_IMAGE = "image"

CALL_TYPE_DEFAULT = "audio_video"
USER_ID_MAX_LENGTH = 128
ROOM_DETAIL_FIELDS = {
    "recording": "recording",
    "recording_status": "recordingStatus",
    "call_type": "callType",
    "description": "description",
    "status": "status",
    "disabled": "disabled",
    "creation_date": "creationDate",
    "duration": "durationInSeconds",
    "duration_used": "durationUsedInSeconds",
    "live": "live",
}
"""Kaleyra's room details (snake_case) -> the names our API exposes under `details`."""


def create_user_body(user_id: str, role: str) -> dict[str, Any]:
    return {USER_ID: user_id, ROLE: role}


def created_user_id(body: object) -> str:
    return _text(_object(body), ID)


def create_room_body(spec: RoomSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        PARTICIPANTS: [
            {
                USER_ID: participant.provider_user_id,
                IS_ADMIN: participant.is_admin,
                FIELD_TOOLS: {tool: tool in participant.tools for tool in TOOLS},
            }
            for participant in spec.participants
        ],
        RECORDING: spec.recording,
        LIVE: spec.live,
        CALL_TYPE: CALL_TYPE_DEFAULT,
    }
    if spec.duration_seconds is not None:  # omitted = unlimited
        body[DURATION] = spec.duration_seconds
    return body


@dataclass(frozen=True)
class RoomAnswer:
    room_id: str
    links: Mapping[str, str]


def created_room(body: object) -> RoomAnswer:
    room = _object(body)
    participants = room.get(PARTICIPANTS)
    if not isinstance(participants, list):
        raise UnexpectedAnswer(f"no {PARTICIPANTS} list in the created room")
    links = {}
    for participant in participants:
        entry = _object(participant)
        links[_text(entry, USER_ID)] = _text(entry, LINK)
    return RoomAnswer(room_id=_text(room, ID), links=links)


def room_details(body: object) -> dict[str, Any]:
    room = _object(body)
    return {ours: room[theirs] for theirs, ours in ROOM_DETAIL_FIELDS.items() if theirs in room}


def credentials_body(user_id: str, expires_in: int) -> dict[str, Any]:
    return {USER_ID: user_id, EXPIRES_IN: expires_in}


def credentials(body: object) -> tuple[str, str, str]:
    """(access token, expiry, user id) of an SDK credentials answer."""
    answer = _object(body)
    return _text(answer, ACCESS_TOKEN), _text(answer, EXPIRES_AT), _text(answer, USER_ID)


def background(body: object) -> dict[str, object]:
    answer = _object(body)
    return {name: _text(answer, name) for name in (BACKGROUND_ALIAS, "url", "creation_date")}


def company(body: object) -> dict[str, object]:
    return dict(_object(body))


def upload_keys(body: object) -> list[str]:
    uploads = _object(body).get(UPLOAD_LIST)
    if not isinstance(uploads, list):
        raise UnexpectedAnswer(f"no {UPLOAD_LIST} list")
    return [_text(_object(upload), UPLOAD_KEY) for upload in uploads]


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedAnswer(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(value: Mapping[str, Any], name: str) -> str:
    found = value.get(name)
    if not isinstance(found, str) or not found:
        raise UnexpectedAnswer(f"no {name!r} string")
    return found
