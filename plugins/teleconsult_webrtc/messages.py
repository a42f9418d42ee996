"""The signaling messages pages send: parsed and checked field by field before anything is
relayed (a malformed one closes its own connection, with a reason).

The browser protocol (JSON text frames):

| direction | `type` | fields | meaning |
| --- | --- | --- | --- |
| page -> server | `join` | `resume` (optional) | the first message, within 10 s |
| server -> page | `resumed` | as `joined` | `resume` named this page's seat: same id, nobody told |
| server -> page | `joined` | `self{id,name,isAdmin}`, `peers[...]`, `waiting[...]` | in |
| server -> page | `waiting` | `self{id,name,isAdmin}` | in the lobby: nothing relayed |
| server -> page | `knock`, `knock-withdrawn` | `peer{id,name,since}` / `id` | plus pages |
| page -> server | `admit`, `decline` | `peer` | a plus page decides on a waiting one |
| server -> page | `declined` | | refused; then 4003 |
| server -> page | `peer-joined` | `peer{id,name,isAdmin}` | someone arrived: wait for their offer |
| server -> page | `peer-left` | `id` | close that peer connection |
| both ways | `offer`, `answer` | `to` / `from`, `sdp` | relayed; the server sets `from` |
| both ways | `candidate` | `to` / `from`, `candidate` | rebuilt from its known fields |
| both ways | `media` | `from`, `audio`, `video` | microphone and camera on or off: to every peer |
| both ways | `chat` | `from`, `text` | `chat` tool only: to every seated peer, never kept |
| both ways | `screen` | `from`, `sharing` | with the `screen_sharing` tool only: sharing or not |
| both ways | `video-paused` | `to` / `from`, `paused` | no video to that peer: a weak link |
| page -> server | `end` | | the admin ends the call for everyone |
| page -> server | `report` | `event`, `path` | for the metrics (`messages.reported`) |
| server -> page | `ended` | `reason` | over (`ended_by_host`, `cancelled`, `expired`): 4000 |
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType

MAX_MESSAGE_BYTES = 64 * 1024
"""Our own limit, closed with 1009 and a reason. An SDP offer for audio and video is 3 to
10 KB; candidates are a few hundred bytes."""
HARD_MAX_MESSAGE_BYTES = 2 * MAX_MESSAGE_BYTES
"""aiohttp's limit: it refuses larger frames before buffering them (1009, no reason)."""
MAX_ID_CHARS = 64
MAX_CANDIDATE_CHARS = 1024
MAX_CHAT_CHARS = 1000
"""A chat message's text, in characters: a few sentences, not a document."""
TOOL_OF = {"chat": "chat", "screen": "screen_sharing"}
"""The message types a seat may send only with a tool of its level."""


class ProtocolError(Exception):
    """Closes the offending connection only."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def violation(reason: str) -> ProtocolError:
    return ProtocolError(WSCloseCode.POLICY_VIOLATION, reason)


def parse_message(message: WSMessage) -> dict[str, Any]:
    """One frame from a page: a JSON object with a string `type`, or a ProtocolError."""
    if message.type is WSMsgType.BINARY:
        raise violation("binary messages are not supported")
    if message.type is not WSMsgType.TEXT:
        raise violation("unexpected frame")
    data = str(message.data)
    if len(data.encode()) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            WSCloseCode.MESSAGE_TOO_BIG, f"message too big (limit {MAX_MESSAGE_BYTES} bytes)"
        )
    try:
        decoded: object = json.loads(data)
    except (ValueError, RecursionError):
        raise violation("invalid JSON") from None
    if not isinstance(decoded, dict):
        raise violation("message must be a JSON object")
    if not isinstance(decoded.get("type"), str):
        raise violation("missing field 'type'")
    return decoded


def text_field(message: Mapping[str, object], key: str, max_chars: int) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise violation(f"missing or invalid field '{key}'")
    if len(value) > max_chars:
        raise violation(f"field '{key}' too long")
    return value


def ice_candidate(message: Mapping[str, object]) -> dict[str, object] | None:
    """An RTCIceCandidateInit rebuilt from its known fields only; None ends the candidates."""
    if "candidate" not in message:
        raise violation("missing field 'candidate'")
    raw = message["candidate"]
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise violation("invalid field 'candidate'")
    line, mid, index, fragment = (
        raw.get(name) for name in ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
    )
    valid = (
        isinstance(line, str)
        and len(line) <= MAX_CANDIDATE_CHARS
        and (mid is None or (isinstance(mid, str) and len(mid) <= MAX_ID_CHARS))
        and (index is None or (type(index) is int and 0 <= index < 1024))
        and (fragment is None or (isinstance(fragment, str) and len(fragment) <= 256))
        and not (mid is None and index is None)
    )
    if not valid:
        raise violation("invalid field 'candidate'")
    return {"candidate": line, "sdpMid": mid, "sdpMLineIndex": index, "usernameFragment": fragment}


def media_state(message: Mapping[str, object]) -> dict[str, object]:
    """A page's microphone and camera, on or off: two booleans and nothing else."""
    audio, video = message.get("audio"), message.get("video")
    if type(audio) is not bool or type(video) is not bool:
        raise violation("invalid media state")
    return {"audio": audio, "video": video}


def video_paused(message: Mapping[str, object]) -> dict[str, object]:
    """Whether a page stopped sending video to one peer, the connection being too weak for it
    (its audio goes on): a boolean and nothing else."""
    if type(message.get("paused")) is not bool:
        raise violation("invalid field 'paused'")
    return {"paused": message["paused"]}


def to_everyone(
    kind: str, message: Mapping[str, object], tools: frozenset[str]
) -> dict[str, object]:
    """The fields of a message relayed to every seated peer (`media`, `chat`, `screen`),
    checked; a seat whose level lacks the message's tool is refused. A chat text may hold
    health data: it is relayed, never logged nor kept."""
    tool = TOOL_OF.get(kind)
    if tool is not None and tool not in tools:
        raise violation(f"the '{tool}' tool is not enabled for this participant")
    if kind == "media":
        return media_state(message)
    if kind == "screen":
        if type(message.get("sharing")) is not bool:
            raise violation("invalid screen state")
        return {"sharing": message["sharing"]}
    text = text_field(message, "text", MAX_CHAT_CHARS).strip()
    if not text:
        raise violation("empty chat message")
    return {"text": text}


REPORTED_EVENTS = ("connected", "ice-failed", "reconnected")
PATHS = ("direct", "relay")


def reported(message: Mapping[str, object]) -> tuple[str, str]:
    """A page's `report` of its call, for the metrics: `connected` with the `path` its
    selected candidate pair takes (`direct`, or `relay` through TURN), `ice-failed`, or
    `reconnected` (its signaling came back); the event and the path ("" but connected)."""
    event = message.get("event")
    if event not in REPORTED_EVENTS:
        raise violation("invalid report")
    if event != "connected":
        return str(event), ""
    path = message.get("path")
    if path not in PATHS:
        raise violation("invalid report path")
    return "connected", str(path)


RATE_BURST = 200.0
RATE_PER_SECOND = 50.0
MAX_REPORTS = 2 * 8
"""`report`s a page's connection counts: a few per peer (connected, failed), reconnected."""


@dataclass(frozen=True)
class Member:
    """A participant as the page shows them: name and role, from the roster."""

    name: str
    is_admin: bool
    tools: frozenset[str] = frozenset()
    """The in-call tools the participant's level enables."""


@dataclass
class Reports:
    """What pages reported of their calls (`report` messages): counted by the provider's
    metrics. A page reports a few things per peer; more are ignored."""

    connected: dict[str, int] = field(default_factory=lambda: {"direct": 0, "relay": 0})
    ice_failed: int = 0
    reconnected: int = 0

    def count(self, event: str, path: str) -> None:
        if event == "connected":
            self.connected[path] += 1
        elif event == "ice-failed":
            self.ice_failed += 1
        else:
            self.reconnected += 1


class RateLimit:
    """A page's messages: a burst of RATE_BURST, then RATE_PER_SECOND (a token bucket)."""

    def __init__(self) -> None:
        self._allowance = RATE_BURST
        self._refilled = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._allowance = min(
            RATE_BURST, self._allowance + (now - self._refilled) * RATE_PER_SECOND
        )
        self._refilled = now
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True
