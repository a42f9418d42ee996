"""The README is the site's "Getting started" page.

The README holds the one copy of the tour and of "Make a call" (tests/test_serve.py runs them
as written), so the site renders it instead of keeping a second copy that could drift. Its
title becomes the page's, and its links into docs/ become links between the site's pages.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PAGE = "getting-started.md"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    readme = Path(config.config_file_path).parent / "README.md"
    _, body = readme.read_text(encoding="utf-8").split("\n", 1)  # the title, `# teleconsult`
    page = "# Getting started\n" + body.replace("](docs/", "](")
    files.append(File.generated(config, PAGE, content=page))
    return files
