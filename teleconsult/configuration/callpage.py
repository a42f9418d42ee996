"""`CallPageSettings`: the call page's variables, for every provider that serves it; and
`Branding`, what the configuration file says about its look (`theme`, `companyLogo`, `mode`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from teleconsult.configuration.declarations import (
    Boolean,
    DeclaredSettings,
    Origins,
    WholeNumber,
    setting,
)


@dataclass(frozen=True)
class Colors:
    """One colour scheme's colours, as the configuration file gives them (CSS colours)."""

    primary: str | None = None
    accent: str | None = None


Mode = Literal["light", "dark"]
"""A colour scheme the configuration file may force on the call page."""


@dataclass(frozen=True)
class Branding:
    """The call page's look from the service configuration file: its `theme` (light and dark
    colours), `companyLogo.url` and `mode` (a forced colour scheme; None follows the
    browser's `prefers-color-scheme`)."""

    light: Colors = Colors()
    dark: Colors = Colors()
    logo_url: str | None = None
    mode: Mode | None = None


class CallPageSettings(DeclaredSettings):
    frame_ancestors: Origins = setting(
        "CALL_PAGE_FRAME_ANCESTORS",
        frozenset(),
        "comma-separated origins (`https://portal.example.org`: no path, no `*`) whose pages may "
        'show the call page in an iframe (with `allow="camera; microphone; fullscreen; '
        'display-capture"`); unset = no site may frame it',
    )
    texts_dir: str = setting(
        "CALL_PAGE_TEXTS_DIR",
        "",
        "a folder of message catalogs (`<language>.json`, the built-in catalogs' keys) that add "
        "languages to the call page or override the built-in texts; unset = the built-in "
        "catalogs only (docs/call-page.md)",
    )
    default_language: str = setting(
        "CALL_PAGE_DEFAULT_LANGUAGE",
        "en",
        "the call page's language when neither the participant's `language` nor the browser's "
        "`Accept-Language` names one a catalog serves; must be one of them",
    )
    lobby: Boolean = setting(
        "CALL_PAGE_LOBBY",
        True,
        "participants below the `plus` level wait in a lobby until a `plus` participant admits "
        "them (no media, no presence until then; docs/call-page.md); `false` lets everyone "
        "straight in",
    )
    lobby_notice_ms: WholeNumber = setting(
        "CALL_PAGE_LOBBY_NOTICE_MS",
        300_000,
        "how long a participant waits in the lobby before the page tells them nobody has let "
        "them in yet, and what to do",
        minimum=1_000,
        maximum=3_600_000,
    )
