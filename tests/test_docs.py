"""The docs name what the code has: every module in docs/architecture.md, every make target
with its help line; and tools' caches stay out of git (the image's build context: test_deploy)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
MODULES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "teleconsult").rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_every_module_is_in_the_architecture(module: str) -> None:
    assert f"`{module}`" in ARCHITECTURE, f"docs/architecture.md does not name {module}"


def test_every_make_target_has_a_help_line() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)
    assert phony is not None
    helped = set(re.findall(r"^([a-z-]+):.*## ", makefile, re.MULTILINE))
    assert sorted(set(phony.group(1).split()) - helped) == []


def test_every_tool_cache_is_ignored() -> None:
    ignored = set((ROOT / ".gitignore").read_text().split())
    caches = {".schemathesis/", ".hypothesis/", ".mypy_cache/", ".pytest_cache/", "__pycache__/"}
    assert sorted(caches - ignored) == []
