"""The docs name what the code has: every module in docs/architecture.md, every make target
with its help line, the settings page's table as the declarations print it, the defaults
`make help` and the README state as declared; and tools' caches stay out of git (the image's
build context: test_deploy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
MODULES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "teleconsult").rglob("*.py"))
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
SETTINGS_PAGE = (ROOT / "docs" / "settings.md").read_text()


def flat(text: str) -> str:
    return " ".join(text.split())


def settings_markdown() -> str:
    """What `teleconsult settings --markdown` prints: the declared settings' table."""
    command = [sys.executable, "-m", "teleconsult", "settings", "--markdown"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603


def declared_defaults() -> dict[str, str]:
    """Each variable's default, from the command's table (`(unset)` for none)."""
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \|", settings_markdown(), re.MULTILINE)
    return {name: default.strip("`") for name, default in rows}


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_in_the_architecture(module: str) -> None:
    assert f"`{module}`" in ARCHITECTURE, f"docs/architecture.md does not name {module}"


def test_every_make_target_has_a_help_line() -> None:
    phony = re.search(r"^\.PHONY: (.*)$", MAKEFILE, re.MULTILINE)
    assert phony is not None
    helped = set(re.findall(r"^([a-z-]+):.*## ", MAKEFILE, re.MULTILINE))
    assert sorted(set(phony.group(1).split()) - helped) == []


def test_every_tool_cache_is_ignored() -> None:
    ignored = set((ROOT / ".gitignore").read_text().split())
    caches = {".schemathesis/", ".hypothesis/", ".mypy_cache/", ".pytest_cache/", "__pycache__/"}
    assert sorted(caches - ignored) == []


def test_the_settings_page_ends_with_the_declared_settings() -> None:
    """docs/settings.md's table is `teleconsult settings --markdown`: run `make settings-page`
    when this fails. The page is committed, not generated at build time, so that it reads as
    it is in the repository (the README links to it) and a change to a setting shows in the
    diff that makes it."""
    _, begin, rest = SETTINGS_PAGE.partition("\n<!-- settings table: begin.")
    table, end, _ = rest.split("\n", 1)[1].partition("<!-- settings table: end -->\n")
    assert (begin, end) != ("", "")
    assert table == settings_markdown() + "\n"  # and a blank line, which ends the table


def test_make_help_says_what_make_run_serves() -> None:
    """`make run` runs `teleconsult serve` with no setting: its help line states the defaults."""
    defaults = declared_defaults()
    store = {"sqlite": "SQLite", "mongodb": "MongoDB"}[defaults["STORE_URL"].split(":", 1)[0]]
    run = re.search(r"^run: .*## (.*)$", MAKEFILE, re.MULTILINE)
    assert run is not None
    assert run.group(1) == (
        f"serve on http://{defaults['HTTP_HOST']}:{defaults['HTTP_PORT']} "
        f"({store}, {defaults['VIDEO_PROVIDER']} video, {defaults['IDENTITY_PROVIDER']} identity)"
    )
    assert re.search(r"^run: .*\n\t\$\(BIN\)/teleconsult serve\n", MAKEFILE, re.MULTILINE)


def test_the_readme_states_the_defaults_as_declared() -> None:
    defaults = declared_defaults()
    address = f"http://{defaults['HTTP_HOST']}:{defaults['HTTP_PORT']}"
    assert f"make run    # creates .venv, installs, serves on {address}\n" in README
    paragraph = flat(README.split("\n`make run` serves on ", 1)[1].split("\n\n", 1)[0])
    store_file = defaults["STORE_URL"].removeprefix("sqlite:///")
    assert paragraph.startswith(f"{address} with the defaults: the SQLite store (`{store_file}` ")
    assert f"the `{defaults['VIDEO_PROVIDER']}` video provider" in paragraph
    assert f"the `{defaults['IDENTITY_PROVIDER']}` identity provider" in paragraph


def test_the_readme_is_short() -> None:
    """A newcomer reads it to the end; the reference is the site (docs/, mkdocs.yml)."""
    assert len(README.splitlines()) <= 250


def test_the_site_fetches_nothing_from_the_network() -> None:
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert site["theme"] == {**site["theme"], "name": "material", "font": False}
    assert site["docs_dir"] == "docs"
    assert "plugins" not in site  # the default, search, is served with the site
