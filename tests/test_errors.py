"""The error codes are listed twice, as a type and as documented codes: the two must agree."""

from __future__ import annotations

from typing import get_args

from teleconsult.errors import ERROR_CODES, ErrorCode


def test_every_error_code_is_documented_and_every_documented_code_exists() -> None:
    assert list(ERROR_CODES) == list(get_args(ErrorCode))
