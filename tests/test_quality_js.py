"""The call page's pure JavaScript rules (the connection quality and when video pauses for a
weak connection) under Node's own test runner: `node --test tests/js/`, run here so the suite
fails when they do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

JS_TESTS = Path(__file__).parent / "js"


def test_the_javascript_unit_tests_pass() -> None:
    node = shutil.which("node")
    assert node, "the call page's JavaScript tests need Node.js: apt-get install -y nodejs"
    files = sorted(str(path) for path in JS_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs in {JS_TESTS}"
    run = subprocess.run(  # noqa: S603 (a fixed command: node and our own files)
        [node, "--test", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout
