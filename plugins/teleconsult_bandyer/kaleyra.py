"""The Kaleyra Video REST API v2, as far as it is known: every path and field name, once.

Nothing here has been checked against the live API; `teleconsult provider-check`
tells an operator in a minute whether their account answers as assumed. What each
assumption rests on (Kaleyra's public pages on developers.kaleyra.io, compared
2026-12; shared/spec/kaleyra.md):
- `apikey` header, HTTPS only, hosts `api.[region].bandyer.com` and
  `api.sandbox.[region].bandyer.com` [video-authentication, v1-to-v2 migration guide].
- A custom user id is sent as `id` [video-user-registration]; the answer carries the
  user's `id`. The status of a duplicate id is not documented: an answer that says the
  id exists counts as "already there", whatever its status (409, 400, 422).
- Room participants `{user_id, is_admin, tools}`, 2 to 25, at least one plus; `duration`
  at least 60 s, omitted = unlimited; `recording`; `call_type`
  [video-v2-room-post, video-v2-roomparticipant-post].
- The room creation answer: v2 documents only that it "returns the URLs each user can
  use"; the one documented shape is v1's `room.room_id` and `room.user_urls[{user, url}]`
  [video-room-create]. Both that and the v2 form we assumed (`id`,
  `participants[].link`) are read.
- Lists are paginated in v2 (`offset`, `limit`, `has_more`) [migration guide]: every
  page is read.
- The v2 company object names the default background `default_background`
  [migration guide].
- SDK credentials `{user_id, expires_in}` -> `{access_token, expires_at, user_id}`
  [video-authentication].
- Rate limits are not published; Kaleyra's own iOS sample waits 60 s after a 429.
- Room details, uploads and the background upload answers are assumptions (G).
Request bodies are built and responses read by the small functions below, so the
client never spells a field name itself.
"""

from __future__ import annotations

import re
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
CUSTOM_USER_ID = "id"
"""The custom id of a new user, as the user-registration guide names it."""
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
DEFAULT_BACKGROUND = "default_background"
"""The company's default background, as the v2 company object names it."""
PAGE_SIZE = 100
MAX_PAGES = 1000
"""A list longer than this many pages is a provider fault, not a list to follow."""
EXISTS = re.compile(r"(?i)already|exist|duplicate|taken|in use")
"""What an error message says when a custom user id is taken, whatever its status."""

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
    return {CUSTOM_USER_ID: user_id, ROLE: role}


def says_user_exists(status: int, body: object) -> bool:
    """A refusal that says the custom id is taken: Kaleyra does not document its status."""
    if status == 409:
        return True
    message = body.get("message") or body.get("error") if isinstance(body, dict) else None
    return status in (400, 422) and isinstance(message, str) and bool(EXISTS.search(message))


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
    room_id: str | None
    """None when the answer names no room in any form we read: the room may exist anyway."""
    links: Mapping[str, str]


def created_room(body: object) -> RoomAnswer:
    """The room a creation answer names and its links, read from either form:
    v2 as assumed, `{id, participants: [{user_id, link}]}`, or v1 as documented,
    `{room: {room_id, user_urls: [{user, url}]}}`. What cannot be read is left out."""
    answer: dict[str, Any] = body if isinstance(body, dict) else {}
    room = answer.get("room")
    v1: dict[str, Any] = room if isinstance(room, dict) else {}
    room_id = _optional_text(answer, ID) or _optional_text(v1, "room_id")
    links: dict[str, str] = {}
    for entries, user_field, link_field in (
        (answer.get(PARTICIPANTS), USER_ID, LINK),
        (v1.get("user_urls"), "user", "url"),
    ):
        for entry in entries if isinstance(entries, list) else ():
            user = _optional_text(entry, user_field) if isinstance(entry, dict) else None
            link = _optional_text(entry, link_field) if isinstance(entry, dict) else None
            if user and link:
                links[user] = link
    return RoomAnswer(room_id=room_id, links=links)


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


def upload_page(body: object) -> tuple[list[str], bool]:
    """One page of a room's files: their keys, and whether more pages follow."""
    answer = _object(body)
    uploads = answer.get(UPLOAD_LIST)
    if not isinstance(uploads, list):
        raise UnexpectedAnswer(f"no {UPLOAD_LIST} list")
    return [_text(_object(upload), UPLOAD_KEY) for upload in uploads], answer.get(
        "has_more"
    ) is True


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedAnswer(f"expected a JSON object, got {type(value).__name__}")
    return value


def _optional_text(value: Mapping[str, Any], name: str) -> str | None:
    found = value.get(name)
    return found if isinstance(found, str) and found else None


def _text(value: Mapping[str, Any], name: str) -> str:
    found = value.get(name)
    if not isinstance(found, str) or not found:
        raise UnexpectedAnswer(f"no {name!r} string")
    return found
