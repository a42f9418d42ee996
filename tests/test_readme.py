"""The README documents every environment variable, configuration option and error code.

Its table of environment variables is the declared settings' (`tests/test_cli.py` compares
the two); the configuration file's options and the error codes are checked here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teleconsult.configuration.service_config import _ServiceConfig
from teleconsult.errors import ERROR_CODES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize(
    "name", sorted(field.data_key or key for key, field in _ServiceConfig._declared_fields.items())
)
def test_every_configuration_option_is_in_the_readme(name: str) -> None:
    assert re.search(rf"^\| `{re.escape(name)}[.`,]", README, re.MULTILINE), name


def test_every_error_code_is_in_the_readme_table() -> None:
    table = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (.*) \|$", README, re.MULTILINE)
    assert [(code, f"{status}: {meaning}") for code, status, meaning in table] == list(
        ERROR_CODES.items()
    )
