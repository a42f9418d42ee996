"""`CallPage`: the call page every provider that serves one serves the same way: its HTML,
its assets, its headers (CSP, frame-ancestors, Permissions-Policy), and the ending pages
of a link that opens nothing, in the participant's language.

A provider adds its transport (one JavaScript module, `transport`) and its routes; the
page's UI (`call.js`) loads the transport the page names, so the UI and the transports
stay apart (the mesh's `webrtc` transport is in its plugin).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from http import HTTPStatus
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from teleconsult.callpage.catalogs import BUILT_IN, Catalogs, load
from teleconsult.callpage.ice import NO_ICE, BrowserIce, IceServers
from teleconsult.configuration.callpage import Branding, CallPageSettings, Colors

_FILES = resources.files(__package__) / "assets"
TEMPLATE = (_FILES / "call.html").read_text(encoding="utf-8")
"""The call page's body (`{{logo}}` filled in)."""
CHECK_TEMPLATE = (_FILES / "check.html").read_text(encoding="utf-8")
"""The device check page's body."""
ENDING_REASONS = frozenset(
    {
        "invalid",
        "not_open",
        "expired",
        "gone",
        "cancelled",
        "ended",
        "connection_lost",
        "revoked",
        "removed",
    }
)
"""The reasons a link opens nothing, each a catalog key with its `next_` line."""
UNBRANDED = Branding()


@dataclass(frozen=True)
class Lobby:
    """The lobby the page's providers enforce: on or off, and when a waiting participant is
    told that nobody has admitted them yet (the page shows what to do)."""

    enabled: bool
    notice_ms: int = 300_000


NO_LOBBY = Lobby(enabled=False)
"""A page built outside an app (a provider's own tests): everyone goes straight in; the app
passes `CALL_PAGE_LOBBY`, on by default."""
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


@dataclass(frozen=True)
class Asset:
    """A file the page loads: its bytes, type and ETag (revalidated, never stale)."""

    body: bytes
    content_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Asset:
        return cls(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


STATIC_ASSETS = {
    name: Asset.of((_FILES / name).read_bytes(), content_type)
    for name, content_type in (
        ("call.js", "text/javascript"),
        ("precheck.js", "text/javascript"),
        ("check.js", "text/javascript"),
        ("admission.js", "text/javascript"),
        ("tiles.js", "text/javascript"),
        ("quality.js", "text/javascript"),
        ("tools.js", "text/javascript"),
        ("removal.js", "text/javascript"),
        ("confirm.js", "text/javascript"),
        ("ending.js", "text/javascript"),
        ("call.css", "text/css"),
        ("dark.css", "text/css"),
    )
}


def content_security_policy(
    frame_ancestors: frozenset[str] = frozenset(), image_origin: str | None = None
) -> str:
    """Our own scripts and styles only; images also from the logo's origin; framed by the
    origins listed (none by default)."""
    images = "img-src 'self' data:" + (f" {image_origin}" if image_origin else "")
    ancestors = " ".join(sorted(frame_ancestors)) or "'none'"
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; {images}; "
        f"media-src 'self' blob:; connect-src 'self'; frame-ancestors {ancestors}; "
        "base-uri 'none'; form-action 'none'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()
"""The default page's policy: nothing from elsewhere, framed by nobody."""
PERMISSIONS_POLICY = (
    "camera=(self), microphone=(self), fullscreen=(self), display-capture=(self), geolocation=()"
)
"""What the page may use, framed or not (a framing page grants them with its iframe's
`allow`); `self` is the page's own origin wherever it is framed."""


class CallPage:
    """The page, its texts and headers for one app's settings and branding."""

    def __init__(
        self,
        catalogs: Catalogs,
        frame_ancestors: frozenset[str] = frozenset(),
        branding: Branding = UNBRANDED,
        lobby: Lobby = NO_LOBBY,
        ice_servers: IceServers = NO_ICE,
    ) -> None:
        self.catalogs = catalogs
        self.ice_servers = ice_servers
        """STUN, TURN and the transport policy (`WEBRTC_STUN_URLS`...): `ice`, `check_ice`."""
        self.lobby = lobby
        """Whether participants below `plus` wait to be admitted (`CALL_PAGE_LOBBY`)."""
        self.branding = branding
        logo = branding.logo_url
        parts = urlsplit(logo) if logo else None
        image_origin = f"{parts.scheme}://{parts.netloc}" if parts and parts.netloc else None
        self.headers: Mapping[str, str] = {
            "Content-Security-Policy": content_security_policy(frame_ancestors, image_origin),
            "Referrer-Policy": "no-referrer",
            # X-Frame-Options cannot list origins: it is sent only when nobody may frame.
            **({} if frame_ancestors else {"X-Frame-Options": "DENY"}),
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": PERMISSIONS_POLICY,
            "X-Robots-Tag": "noindex, nofollow",
        }
        self.no_store: Mapping[str, str] = {**self.headers, "Cache-Control": "no-store"}
        """Pages, info and refusals: they hold a credential's outcome or names."""
        self.assets: Mapping[str, Asset] = {
            **STATIC_ASSETS,
            "theme.css": Asset.of(theme_css(branding).encode(), "text/css"),
        }

    @classmethod
    def from_settings(
        cls,
        settings: CallPageSettings,
        branding: Branding = UNBRANDED,
        ice_servers: IceServers = NO_ICE,
    ) -> CallPage:
        """Reads `CALL_PAGE_TEXTS_DIR`'s catalogs: a bad one stops the start, named."""
        return cls(
            load(settings.texts_dir, settings.default_language),
            settings.frame_ancestors,
            branding,
            Lobby(settings.lobby, settings.lobby_notice_ms),
            ice_servers,
        )

    def ice(self, valid_until: datetime) -> BrowserIce:
        """A participant's `iceServers` and `iceTransportPolicy`, for the page's info: TURN
        credentials that expire no later than `valid_until` (when the link stops opening the
        call, bounded by the consultation's window)."""
        return self.ice_servers.for_browser(valid_until)

    def check_ice(self) -> BrowserIce:
        """The check page's (no link): STUN only, never TURN credentials."""
        return self.ice_servers.for_anyone()

    def language(self, participant: str | None, accept_language: str | None) -> str:
        return self.catalogs.negotiate(participant, accept_language)

    # -- answers -------------------------------------------------------------------------------

    def page(self, language: str, transport: str) -> web.Response:
        """The call page in `language`, loading the provider's transport module (an asset
        name beside the page's own)."""
        html = self._document(
            language,
            "…",
            "../assets/",
            "call.js",
            TEMPLATE.replace("{{logo}}", self._logo()),
            meta=f'<meta name="call-transport" content="{escape(transport)}">\n',
        )
        return web.Response(
            text=html, content_type="text/html", charset="utf-8", headers=self.no_store
        )

    def check_page(self, language: str) -> web.Response:
        """The device and connection check that needs no link: nothing of a consultation in
        it, so anyone may open it the day before."""
        html = self._document(
            language, "…", "assets/", "check.js", CHECK_TEMPLATE.replace("{{logo}}", self._logo())
        )
        return web.Response(
            text=html, content_type="text/html", charset="utf-8", headers=self.no_store
        )

    def ending(
        self, why: str, status: int, language: str, *, opens_at: datetime | None = None
    ) -> web.Response:
        """What happened and what to do next, as a page of its own."""
        said = self.catalogs.text
        then = escape(said(language, f"next_{why}"))
        if opens_at is not None:
            at = opens_at.astimezone(UTC)
            then = then.replace(
                "{time}",
                f'<time datetime="{at.isoformat().replace("+00:00", "Z")}">'
                f"{at.strftime('%Y-%m-%d %H:%M')} UTC</time>",
            )
        body = self._document(
            language,
            f"{said(language, why)} - {said(language, 'title')}",
            "../assets/",
            "ending.js",
            f'<main class="notice" id="ending" data-reason="{escape(why)}">'
            f'<header class="brand">{self._logo()}'
            f'<p class="product">{escape(said(language, "title"))}</p></header>'
            f'<h1 id="refused" data-reason="{escape(why)}">{escape(said(language, why))}</h1>'
            f'<p id="next">{then}</p>'
            "</main>\n",
        )
        return web.Response(
            status=status,
            text=body,
            content_type="text/html",
            charset="utf-8",
            headers=self.no_store,
        )

    def ending_json(self, why: str, status: int, language: str) -> web.Response:
        """The same, for the page's own requests (its info)."""
        return web.json_response(
            {
                "statusCode": status,
                "error": HTTPStatus(status).phrase,
                "message": self.catalogs.text(language, why),
                "reason": why,
            },
            status=status,
            headers=self.no_store,
        )

    def asset(self, request: web.Request, own: Mapping[str, Asset] | None = None) -> web.Response:
        """One of the page's files, or the provider's own (its transport), by name."""
        name = request.match_info["name"]
        found = (own or {}).get(name) or self.assets.get(name)
        if found is None:
            raise web.HTTPNotFound()
        headers = {**self.headers, "Cache-Control": "no-cache", "ETag": found.etag}
        if request.headers.get("If-None-Match") == found.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=found.body, content_type=found.content_type, charset="utf-8", headers=headers
        )

    # -- internals -----------------------------------------------------------------------------

    def _document(
        self, language: str, title: str, assets: str, script: str, body: str, meta: str = ""
    ) -> str:
        """Every page's document (the call, the device check, the endings): one head with the
        styles (the dark ones where they apply) and the page's module, around `body`."""
        return (
            "<!doctype html>\n"
            f'<html lang="{escape(language)}"{self._mode_attribute()}>\n<head>\n'
            '<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="robots" content="noindex">\n'
            f"{meta}<title>{escape(title)}</title>\n"
            '<link rel="icon" href="data:,">\n'
            f'<link rel="stylesheet" href="{assets}call.css">\n'
            f'<link rel="stylesheet" href="{assets}theme.css">\n'
            f"{self._dark_styles(assets)}"
            f'<script type="module" src="{assets}{script}"></script>\n'
            f"</head>\n<body>\n{body}</body>\n</html>\n"
        )

    def _dark_styles(self, assets: str) -> str:
        """dark.css: where the browser prefers dark, always with the configuration's `mode`
        dark, never with it light."""
        mode = self.branding.mode
        if mode == "light":
            return ""
        media = "" if mode == "dark" else ' media="(prefers-color-scheme: dark)"'
        return f'<link rel="stylesheet" href="{assets}dark.css"{media}>\n'

    def _mode_attribute(self) -> str:
        mode = self.branding.mode
        return f' data-mode="{mode}"' if mode else ""

    def _logo(self) -> str:
        url = self.branding.logo_url
        return f'<img class="logo" src="{escape(url)}" alt="">' if url else ""


def theme_css(branding: Branding) -> str:
    """The configuration's colours as the page's custom properties (text on the primary
    colour in black or white, whichever contrasts more)."""

    def block(colors: Colors) -> str:
        lines = []
        if colors.primary and _HEX.match(colors.primary):
            lines.append(f"--primary: {colors.primary}; --on-primary: {_on(colors.primary)};")
        if colors.accent and _HEX.match(colors.accent):
            lines.append(f"--accent: {colors.accent};")
        return " ".join(lines)

    light, dark = block(branding.light), block(branding.dark)
    css = ["/* the service configuration's theme */"]
    if light:
        css.append(f':root {{ {light} }}\n:root[data-mode="light"] {{ {light} }}')
    if dark:
        css.append(
            f"@media (prefers-color-scheme: dark) {{ :root:not([data-mode]) {{ {dark} }} }}\n"
            f':root[data-mode="dark"] {{ {dark} }}'
        )
    return "\n".join(css) + "\n"


def _on(color: str) -> str:
    """Black or white text on `color`: the one with the higher WCAG contrast ratio."""
    hexa = color[1:]
    if len(hexa) == 3:
        hexa = "".join(c * 2 for c in hexa)
    channels = [int(hexa[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#fff"


def default_call_page() -> CallPage:
    """The built-in catalogs, English by default, framed by nobody, unbranded."""
    return CallPage(Catalogs(BUILT_IN, "en"))
