"""The docs document every environment variable, configuration option and error code.

The settings page's table of environment variables is the declared settings' (`tests/test_cli.py`
and `tests/test_docs.py` compare the two); the configuration file's options (docs/settings.md)
and the error codes (docs/api.md) are checked here. The README's tour is run by
`tests/test_serve.py` and `tests/test_generated_client.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teleconsult.configuration.service_config import _ServiceConfig
from teleconsult.errors import ERROR_CODES

DOCS = Path(__file__).resolve().parent.parent / "docs"
SETTINGS_PAGE = (DOCS / "settings.md").read_text()
API_PAGE = (DOCS / "api.md").read_text()


@pytest.mark.parametrize(
    "name", sorted(field.data_key or key for key, field in _ServiceConfig._declared_fields.items())
)
def test_every_configuration_option_is_in_the_readme(name: str) -> None:
    assert re.search(rf"^\| `{re.escape(name)}[.`,]", SETTINGS_PAGE, re.MULTILINE), name


def test_every_error_code_is_in_the_readme_table() -> None:
    table = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| (.*) \|$", API_PAGE, re.MULTILINE)
    assert [(code, f"{status}: {meaning}") for code, status, meaning in table] == list(
        ERROR_CODES.items()
    )
