"""What a log line or an error body must never hold, removed before it is written.

Access links, bearer tokens and JWTs, the values of Authorization, Cookie and API
key headers, labelled secrets, passwords in URLs, every configured secret value, every URL
holding a provider's link marker, and every value the current request marked sensitive
(participants' names, the links and tokens it handed out) become `[redacted]`. The secrets
and link markers are an app's own (`Redactor`); the one in use is the current context's
(`use`). Links are bearer credentials and names are health data; redaction is the last
line of defence, the first being never to log them.
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
`_PATTERNS` needs, a JWT's start, a URL (a password in it); a redactor adds its link
markers. In ASCII text they are looked for as substrings of the lowered text (a
case-insensitive pattern took four times as long on a short path); in other text by that
pattern, whose case folding also matches U+017F (a long s) for `s` and U+0130 (a dotted
I) for `i`, as the scans do."""


def _pattern_of(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("(?i)" + "|".join(re.escape(word) for word in words))


class Redactor:
    """What one app keeps out of its log lines and error bodies: its configured secrets (API
    keys, client secrets, passwords) and the link markers of its video providers (path
    fragments found only in join links, `/fake-video/join/`), on top of the patterns every
    text goes through. Built once per app (`composition`) and never changed: two apps in one
    process each redact their own."""

    def __init__(
        self, secrets: Iterable[str | None] = (), link_markers: Iterable[str] = ()
    ) -> None:
        self.secrets = frozenset(
            value for value in secrets if value and len(value) >= MIN_SECRET_CHARS
        )
        self.link_markers = frozenset(marker for marker in link_markers if marker)
        self._needed = (*NEEDED_WORDS, *sorted(m.lower() for m in self.link_markers))
        self._needed_pattern = _pattern_of(self._needed)

    def redact_secrets(self, text: str) -> str:
        """`text` without any configured secret: for error messages a caller will read."""
        for value in self.secrets:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def redact(self, text: str, limit: int = MAX_FIELD_CHARS) -> str:
        """`text` as it may be logged: nothing sensitive, at most `limit` characters.

        The scans run only when one search finds what they act on: most logged strings
        (methods, paths, messages) hold nothing of the kind."""
        request_values = _SENSITIVE.get()
        present = [value for value in request_values if value in text] if request_values else []
        if self.secrets:
            present += [value for value in self.secrets if value in text]
        if present:
            for value in sorted(present, key=len, reverse=True):  # the longest first: a name
                if value in text:
                    text = text.replace(value, REDACTED)
        if self._needs_scan(text):
            text = _RUN.sub(self._redact_run, text)
            for pattern in _PATTERNS:
                text = pattern.sub(_keep_label, text)
        if len(text) > limit:
            text = f"{text[:limit]}...[{len(text) - limit} more characters]"
        return text

    def redacted(self, value: object) -> object:
        """Every string inside structured fields, redacted (a request's url can hold a link)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redacted(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redacted(item) for item in value]
        return value

    def _needs_scan(self, text: str) -> bool:
        if not text.isascii():
            return self._needed_pattern.search(text) is not None
        lowered = text.lower()
        # A loop, not any(...): no generator for every logged string (0.5 us against 1.2).
        for word in self._needed:  # noqa: SIM110
            if word in lowered:
                return True
        return False

    def _redact_run(self, match: re.Match[str]) -> str:
        """One run of URL characters: each `;`- or `,`-separated piece holding a join link
        goes whole, and a JWT goes from its first part on."""
        run = match.group()
        if any(marker in run for marker in self.link_markers):
            run = "".join(
                REDACTED if self._is_link(piece) else piece for piece in _PIECES.split(run)
            )
        if "eyJ" in run:
            return _JWT_CHARACTERS.sub(_redact_jwt, run)
        return run

    def _is_link(self, piece: str) -> bool:
        """Whether a piece holds a link: a marker followed by anything but a `{template}`."""
        for marker in self.link_markers:
            at = piece.find(marker)
            while at >= 0:
                if not piece.startswith("{", at + len(marker)):
                    return True
                at = piece.find(marker, at + len(marker))
        return False


PATTERNS_ONLY = Redactor()
"""Outside any app (a command's own lines): the patterns, no secrets, no link markers."""

_CURRENT: contextvars.ContextVar[Redactor] = contextvars.ContextVar(
    "redactor", default=PATTERNS_ONLY
)


def use(redactor: Redactor) -> None:
    """From now on in this context (a request, an app's background task, the task that
    starts the app), `redact` and the log lines use `redactor`."""
    _CURRENT.set(redactor)


def current() -> Redactor:
    """The redactor of the app this context works for."""
    return _CURRENT.get()


def redact(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` as the current app's redactor lets it be logged (`Redactor.redact`)."""
    return _CURRENT.get().redact(text, limit)


def redacted(value: object) -> object:
    """`value` with every string in it redacted by the current app's redactor."""
    return _CURRENT.get().redacted(value)


def redact_secrets(text: str) -> str:
    """`text` without the current app's configured secrets (`Redactor.redact_secrets`)."""
    return _CURRENT.get().redact_secrets(text)


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
