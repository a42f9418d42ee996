"""The call page's catalogs, languages and headers, without a browser
(tests/test_call_page_browser.py has the browser's side)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from teleconsult.callpage import CONTENT_SECURITY_POLICY, CallPage
from teleconsult.callpage.catalogs import BUILT_IN, Catalogs, accepted, load
from teleconsult.callpage.page import theme_css
from teleconsult.configuration.callpage import Branding, CallPageSettings, Colors, Mode
from teleconsult.configuration.service_config import DEFAULT_CONFIG, parse_config
from teleconsult.errors import ConfigurationError

LANGUAGES = {"en", "it", "de", "fr", "es", "pl", "pt", "nl"}


def test_every_catalog_has_the_same_keys_and_plurals_with_other() -> None:
    assert set(BUILT_IN) == LANGUAGES
    for language, catalog in BUILT_IN.items():
        assert set(catalog) == set(BUILT_IN["en"]), language
        for key, text in catalog.items():
            if isinstance(text, str):
                assert text.strip(), (language, key)
            else:
                assert "other" in text, (language, key)
        assert "{time}" in catalog["next_not_open"]


@pytest.mark.parametrize(
    ("participant", "header", "expected"),
    [
        ("de-CH", "en", "de"),
        ("PT-br", None, "pt"),
        ("ja", "fr-CA,fr;q=0.9", "fr"),
        (None, "ja, nl;q=0.5, pl;q=0.8", "pl"),
        (None, "pl;q=0, *", "en"),
        ("ja", "zh", "en"),
        ("not a tag!", None, "en"),
    ],
)
def test_the_participants_language_else_the_browsers_else_the_default(
    participant: str | None, header: str | None, expected: str
) -> None:
    assert Catalogs(BUILT_IN, "en").negotiate(participant, header) == expected


def test_accept_language_is_read_by_weight() -> None:
    assert accepted("de-CH, fr;q=0.4, en;q=0.9, it;q=x, *;q=0.1") == ["de-CH", "en", "fr"]


def test_a_language_no_catalog_serves_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    catalogs = Catalogs(BUILT_IN, "it")
    with caplog.at_level(logging.INFO, "teleconsult.callpage"):
        for _ in range(3):
            assert catalogs.negotiate("ja-JP", None) == "it"
    assert [r.getMessage() for r in caplog.records] == [
        "call page: no catalog serves the language 'ja-JP'; the browser's language or 'it' is "
        "used instead"
    ]


def test_a_folder_adds_a_language_and_overrides_texts(tmp_path: Path) -> None:
    (tmp_path / "sv.json").write_text(json.dumps({**BUILT_IN["en"], "join": "Anslut"}))
    (tmp_path / "it.json").write_text(json.dumps({"next_cancelled": "Chiami lo 02 1234."}))

    catalogs = load(str(tmp_path), "sv")

    assert catalogs.default_language == "sv"
    assert catalogs.text("sv", "join") == "Anslut"
    assert catalogs.text("it", "next_cancelled") == "Chiami lo 02 1234."
    assert catalogs.text("it", "join") == "Entra"
    assert catalogs.negotiate("sv-FI", None) == "sv"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("sv.json", {"join": "Anslut"}, "must have every key"),
        ("it.json", {"joins": "Entra"}, "unknown keys joins"),
        ("it.json", {"in_call": {"one": "x"}}, "plural forms with 'other'"),
        ("klingon.json", {}, "a language tag Babel knows"),
        ("it.json", [], "a JSON object"),
    ],
)
def test_a_bad_catalog_stops_the_start(
    tmp_path: Path, name: str, content: object, message: str
) -> None:
    (tmp_path / name).write_text(json.dumps(content))
    with pytest.raises(ConfigurationError, match=message):
        load(str(tmp_path), "en")


def test_the_default_language_must_be_served(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="CALL_PAGE_DEFAULT_LANGUAGE"):
        CallPage.from_settings(CallPageSettings.from_environ({"CALL_PAGE_DEFAULT_LANGUAGE": "sv"}))
    with pytest.raises(ConfigurationError, match="must be a folder"):
        load(str(tmp_path / "missing"), "en")


def test_by_default_nobody_frames_the_page() -> None:
    page = CallPage(Catalogs(BUILT_IN, "en"))
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "camera=(self)" in page.headers["Permissions-Policy"]


def test_framing_origins_and_the_logo_open_the_policy_that_far_only() -> None:
    settings = CallPageSettings.from_environ(
        {"CALL_PAGE_FRAME_ANCESTORS": "https://portal.example.org, https://b.example.org:8443"}
    )
    page = CallPage.from_settings(settings, Branding(logo_url="https://cdn.example.org/a/l.png"))
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors https://b.example.org:8443 https://portal.example.org;" in policy
    assert "img-src 'self' data: https://cdn.example.org;" in policy
    assert "script-src 'self';" in policy
    assert "X-Frame-Options" not in page.headers  # it cannot list origins: CSP says it
    for feature in ("camera", "microphone", "fullscreen", "display-capture"):
        assert f"{feature}=(self)" in page.headers["Permissions-Policy"]
    with pytest.raises(ConfigurationError, match="CALL_PAGE_FRAME_ANCESTORS"):
        CallPageSettings.from_environ({"CALL_PAGE_FRAME_ANCESTORS": "*"})


def test_the_configuration_files_theme_logo_and_mode_reach_the_page() -> None:
    config = parse_config(
        {
            **DEFAULT_CONFIG,
            "theme": {"light": {"primaryColor": "#ffcc00"}, "dark": {"accentColor": "#123"}},
            "companyLogo": {"url": "https://example.org/logo.svg"},
            "mode": "dark",
        },
        "test",
    )
    page = CallPage(Catalogs(BUILT_IN, "en"), branding=config.branding)
    css = page.assets["theme.css"].body.decode()
    assert "--primary: #ffcc00; --on-primary: #000;" in css  # black text on yellow
    assert ':root[data-mode="dark"] { --accent: #123; }' in css
    html = page.page("en", "mesh.js").text or ""
    assert '<html lang="en" data-mode="dark">' in html
    assert '<img class="logo" src="https://example.org/logo.svg" alt="">' in html
    assert theme_css(Branding(light=Colors(primary="#0b5cad"))).count("--on-primary: #fff") == 2
    with pytest.raises(ConfigurationError, match="hex colour"):
        parse_config({**DEFAULT_CONFIG, "theme": {"light": {"primaryColor": "red;}"}}}, "test")


@pytest.mark.parametrize(
    ("mode", "link"),
    [
        (
            None,
            '<link rel="stylesheet" href="../assets/dark.css" media="(prefers-color-scheme: dark)">',
        ),
        ("dark", '<link rel="stylesheet" href="../assets/dark.css">'),
        ("light", None),
    ],
)
def test_every_page_links_the_dark_colours_as_the_mode_says(
    mode: Mode | None, link: str | None
) -> None:
    page = CallPage(Catalogs(BUILT_IN, "en"), branding=Branding(mode=mode))
    pages = {
        "call": page.page("en", "mesh.js").text or "",
        "ending": page.ending("ended", 410, "en").text or "",
        "check": (page.check_page("en").text or "").replace('"assets/', '"../assets/'),
    }
    for name, html in pages.items():
        head = html[: html.index("</head>")]
        styles = [line for line in head.splitlines() if line.startswith('<link rel="stylesheet"')]
        expected = ['<link rel="stylesheet" href="../assets/call.css">']
        expected.append('<link rel="stylesheet" href="../assets/theme.css">')
        assert styles == expected + ([link] if link else []), name  # dark last: it wins
    dark = page.assets["dark.css"].body.decode()
    assert dark.count("{") == 1  # one palette, said once
    assert "color-scheme: dark;" in dark
