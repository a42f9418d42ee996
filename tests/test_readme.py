"""The README documents every environment variable and configuration option, with its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from teleconsult_auth0 import DEFAULTS as AUTH0_DEFAULTS
from teleconsult_bandyer import DEFAULTS as BANDYER_DEFAULTS
from teleconsult_webrtc import DEFAULTS as WEBRTC_DEFAULTS

from teleconsult.configuration.service_config import _ServiceConfig
from teleconsult.configuration.settings import DEFAULTS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def readme_row(name: str) -> list[str]:
    match = re.search(rf"^\| `{re.escape(name)}` \| (.*?) \| (.*) \|$", README, re.MULTILINE)
    assert match is not None, f"README.md has no table row for {name}"
    return [match.group(1), match.group(2)]


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_variable_is_in_the_readme_with_its_default(name: str) -> None:
    default, _ = readme_row(name)
    assert default == (f"`{DEFAULTS[name]}`" if DEFAULTS[name] else "(unset)")


@pytest.mark.parametrize(
    "name", sorted(field.data_key or key for key, field in _ServiceConfig._declared_fields.items())
)
def test_every_configuration_option_is_in_the_readme(name: str) -> None:
    assert re.search(rf"^\| `{re.escape(name)}[.`,]", README, re.MULTILINE), name


@pytest.mark.parametrize("name", ["FAKE_VIDEO_PUBLIC_URL", "WEBRTC_PUBLIC_URL"])
def test_public_url_variables_are_in_the_readme(name: str) -> None:
    assert readme_row(name)[0] == "`http://<HTTP_HOST>:<HTTP_PORT>`"


@pytest.mark.parametrize(("name", "default"), sorted(WEBRTC_DEFAULTS.items()))
def test_webrtc_variables_are_in_the_readme_with_their_default(name: str, default: str) -> None:
    assert readme_row(name)[0] == f"`{default}`"


@pytest.mark.parametrize(
    "name",
    ["WEBRTC_LINK_SECRET", "WEBRTC_STUN_URLS", "WEBRTC_TURN_URLS", "WEBRTC_TURN_SECRET"],
)
def test_webrtc_variables_without_default_are_in_the_readme(name: str) -> None:
    assert readme_row(name)[0] == "(unset)"


@pytest.mark.parametrize("name", ["BANDYER_BASE_URL", "BANDYER_API_SECRET_KEY"])
def test_required_bandyer_variables_are_in_the_readme(name: str) -> None:
    assert readme_row(name)[0] == "(unset)"


@pytest.mark.parametrize(("name", "default"), sorted(BANDYER_DEFAULTS.items()))
def test_optional_bandyer_variables_are_in_the_readme_with_their_default(
    name: str, default: str
) -> None:
    assert readme_row(name)[0] == f"`{default}`"


@pytest.mark.parametrize("name", sorted(AUTH0_DEFAULTS))
def test_auth0_variables_are_in_the_readme_with_their_default(name: str) -> None:
    assert readme_row(name)[0] == f"`{AUTH0_DEFAULTS[name]}`"


@pytest.mark.parametrize(
    "name",
    [
        "AUTH_SERVICE",
        "DEFAULT_CLIENT_TYPE",
        "ADDITIONAL_HEADERS_TO_PROXY",
        "AUTH0_DOMAIN",
        "AUTH0_CLIENT_ID",
        "AUTH0_CLIENT_SECRET",
        "AUTH0_BASE_URL",
        "CUSTOM_ID_USERS_API_ENDPOINT",
    ],
)
def test_auth0_variables_without_default_are_in_the_readme(name: str) -> None:
    assert readme_row(name)[0] == "(unset)"
