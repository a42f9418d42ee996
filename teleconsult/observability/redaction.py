"""What a log line or an error body must never hold, removed before it is written.

Access links, bearer tokens and JWTs, the values of Authorization, Cookie and API
key headers, labelled secrets, passwords in URLs, every configured secret value
(`add_secret`), every URL holding a provider's link marker (`add_link_marker`),
and every value the current request marked sensitive (participants' names, the
links and tokens it handed out) become `[redacted]`. Links are bearer
credentials and names are health data; redaction is the last line of defence,
the first being never to log them.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MAX_FIELD_CHARS = 2048
"""A logged string longer than this is cut (after redaction): a hostile URL cannot fill the log."""
MAX_TRACEBACK_CHARS = 16384

_SENSITIVE: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "sensitive", default=None
)
_SECRETS: set[str] = set()
"""Configured secret values (API keys, client secrets): redacted in every log line and error."""
_LINK_MARKERS: set[str] = set()
"""Path fragments that only join links contain, declared by the providers that make them."""
MIN_SECRET_CHARS = 4

# Every pattern below runs in time linear in its input, whatever the input: an attacker
# chooses the URL and headers that reach the log. No pattern has two unbounded repetitions
# that can match the same text, and possessive quantifiers (*+, ++) never give back what
# they took. Links and JWTs, which have no fixed prefix, are found in one pass over the
# text's runs of URL characters (`_RUN`) instead of by a pattern tried at every position.
_RUN = re.compile(r"[^\s\"'<>]++")
_JWT_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]++")
_PIECES = re.compile(r"([;,])")
_PATTERNS = [
    re.compile(r"(?i)\bbearer\s++[A-Za-z0-9._~+/=-]++"),
    # The whole value of an Authorization header: its scheme (Basic, Bearer, ...) and more.
    re.compile(r"(?i)((?:proxy-)?authorization[\"']?\s*+[:=]\s*+[\"']?)[^\r\n\"',;}]++"),
    # The whole value of headers that hold several secrets: `a=1; b=2` cookies, API keys.
    re.compile(r"(?i)\b((?:set-)?cookie\s*+:\s*+)[^\r\n\"'}]++"),
    re.compile(r"(?i)\b((?:x-)?api-?key\s*+:\s*+)[^\r\n\"'}]++"),
    re.compile(
        r"(?i)((?:api[-_]?key|apikey|access_token|client_secret|password|secret|token|cookie)"
        r"[\"']?\s*+[:=]\s*+[\"']?)[^\s\"',;}]++"
    ),
    re.compile(r"(?<=://)[^/\s:@]++:[^/\s@]++(?=@)"),  # user:password@ in a URL
]


def begin_scope() -> None:
    """Start a request's own set of sensitive values (see `sensitive`)."""
    _SENSITIVE.set(set())


def sensitive(values: Iterable[str | None]) -> None:
    """Mark values of the current request that must never be written (names, links, tokens)."""
    found = _SENSITIVE.get()
    if found is not None:
        found.update(value for value in values if value and len(value) >= 3)


def add_secret(value: str | None) -> None:
    """A configured secret (an API key, a client secret): never written, in logs or errors."""
    if value and len(value) >= MIN_SECRET_CHARS:
        _SECRETS.add(value)


def add_link_marker(marker: str) -> None:
    """A path fragment found only in join links (`/fake-video/join/`): such URLs are redacted."""
    global _NEEDED, _NEEDED_PATTERN
    if marker:
        _LINK_MARKERS.add(marker)
        _NEEDED = (*NEEDED_WORDS, *sorted(known.lower() for known in _LINK_MARKERS))
        _NEEDED_PATTERN = _pattern_of(_NEEDED)


def redact_secrets(text: str) -> str:
    """`text` without any configured secret: for error messages a caller will read."""
    for value in _SECRETS:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


NEEDED_WORDS = (
    "bearer",
    "authorization",
    "cookie",
    "api",
    "token",
    "secret",
    "password",
    "eyj",
    "://",
)
"""What a step of `redact` after the request's values acts on, in lower case: a word one of
`_PATTERNS` needs, a JWT's start, a URL (a password in it); `add_link_marker` adds the
markers. In ASCII text they are looked for as substrings of the lowered text (a
case-insensitive pattern took four times as long on a short path); in other text by that
pattern, whose case folding also matches U+017F (a long s) for `s` and U+0130 (a dotted
I) for `i`, as the scans do."""
_NEEDED: tuple[str, ...] = NEEDED_WORDS


def _pattern_of(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(?i)" + "|".join(re.escape(word) for word in words))


_NEEDED_PATTERN = _pattern_of(NEEDED_WORDS)


def _needs_scan(text: str) -> bool:
    if not text.isascii():
        return _NEEDED_PATTERN.search(text) is not None
    lowered = text.lower()
    # A loop, not any(...): no generator for every logged string (0.5 us against 1.2).
    for word in _NEEDED:  # noqa: SIM110
        if word in lowered:
            return True
    return False


def redact(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` as it may be logged: nothing sensitive, at most `limit` characters.

    The scans run only when one search finds what they act on: most logged strings
    (methods, paths, messages) hold nothing of the kind."""
    request_values = _SENSITIVE.get()
    present = [value for value in request_values if value in text] if request_values else []
    if _SECRETS:
        present += [value for value in _SECRETS if value in text]
    if present:
        for value in sorted(present, key=len, reverse=True):  # the longest first: a name's parts
            if value in text:
                text = text.replace(value, REDACTED)
    if _needs_scan(text):
        text = _RUN.sub(_redact_run, text)
        for pattern in _PATTERNS:
            text = pattern.sub(_keep_label, text)
    if len(text) > limit:
        text = f"{text[:limit]}...[{len(text) - limit} more characters]"
    return text


def _redact_run(match: re.Match[str]) -> str:
    """One run of URL characters: each `;`- or `,`-separated piece holding a join link goes
    whole, and a JWT goes from its first part on."""
    run = match.group()
    if any(marker in run for marker in _LINK_MARKERS):
        run = "".join(REDACTED if _is_link(piece) else piece for piece in _PIECES.split(run))
    if "eyJ" in run:
        return _JWT_CHARACTERS.sub(_redact_jwt, run)
    return run


def _is_link(piece: str) -> bool:
    """Whether a piece holds a link: a marker followed by anything but a `{template}`."""
    for marker in _LINK_MARKERS:
        at = piece.find(marker)
        while at >= 0:
            if not piece.startswith("{", at + len(marker)):
                return True
            at = piece.find(marker, at + len(marker))
    return False


def _redact_jwt(match: re.Match[str]) -> str:
    """A run of JWT characters; from an `eyJ` that starts a part and is followed by two dots."""
    text = match.group()
    second_last_dot = text.rfind(".", 0, max(text.rfind("."), 0))
    at = text.find("eyJ")
    while 0 <= at < second_last_dot:
        if at == 0 or text[at - 1] in "._-":
            return text[:at] + REDACTED
        at = text.find("eyJ", at + 3)
    return text


def _keep_label(match: re.Match[str]) -> str:
    label = match.group(1) if match.re.groups else ""
    return f"{label}{REDACTED}"


def redacted(value: object) -> object:
    """Every string inside structured fields, redacted (a request's url can hold a link)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    return value
