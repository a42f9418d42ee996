"""The field types and checks the request and response bodies share: bounded lists, dates with
their offset, user ids without invisible characters, strict schemas."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from teleconsult.providers.outbound import segment_problem

NAME = validate.Length(min=1, max=256)
GROUP = validate.Length(min=1, max=128)
DATE_EXAMPLE = "2030-02-22T15:30:00.000Z"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_DURATION_SECONDS = 30 * 24 * 3600
"""Longer than any call; bounds the arithmetic on dates (rooms themselves last at most a day)."""
MAX_GROUPS = 50
MAX_PARTICIPANTS = 1000
"""More participants than any provider takes: a longer list is refused before its items are read."""
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
"""Control, format (zero-width, bidirectional overrides), surrogate, private, unassigned,
line-break and space characters (an ordinary space is allowed, other spaces look like it)."""
_IGNORABLE = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0x1D173, 0x1D17A),
    (0xE0100, 0xE01EF),
)  # fmt: skip
"""Characters drawn as nothing that are not of those categories: Unicode's default-ignorable
combining and filler characters, variation selectors, and the blank Braille pattern."""


def _invisible(character: str) -> bool:
    if character == " ":
        return False
    code = ord(character)
    return unicodedata.category(character) in _INVISIBLE_CATEGORIES or any(
        low <= code <= high for low, high in _IGNORABLE
    )


DOT_SEGMENT_ID = "A user id must not be '.' or '..' (nor spell one with %2E or a look-alike)."


def external_id_problem(value: str) -> str | None:
    """Why `value` cannot be a user id, or None.

    An id with invisible characters or surrounding spaces could never join (header
    values are trimmed), and would show one id while meaning another. `.` and `..`
    could be looked up at a provider as a path segment, which URLs resolve away
    (`/users/..` is `/`, the provider's root).
    """
    if value and segment_problem(value) is not None:  # the empty id fails its length
        return DOT_SEGMENT_ID
    if value != value.strip():
        return "A user id must not start or end with whitespace."
    for character in value:
        if _invisible(character):
            return (
                f"A user id must not hold control, zero-width or direction characters "
                f"(found U+{ord(character):04X})."
            )
    return None


def valid_external_id(value: str) -> None:
    problem = external_id_problem(value)
    if problem is not None:
        raise ValidationError(problem)


class BoundedList(fields.List):
    """A list whose length is checked before its items: a huge list costs no work per item."""

    def __init__(
        self, inner: fields.Field, *, max_items: int, min_items: int | None = None, **kwargs: Any
    ) -> None:
        self.length = validate.Length(min=min_items, max=max_items)
        super().__init__(inner, validate=self.length, **kwargs)  # and documented as such

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list):
            self.length(value)  # raises, with marshmallow's own message, before any item
        result: list[Any] = super()._deserialize(value, attr, data, **kwargs)
        return result


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class AwareDate(fields.AwareDateTime):
    """A date-time with its time-zone offset (no local-time guesses), between 1970 and 9000."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": "Not a date-time like " + DATE_EXAMPLE + " (date, T, time, offset).",
        "invalid_awareness": (
            "The date-time has no time-zone offset (add Z or +hh:mm, as in " + DATE_EXAMPLE + ")."
        ),
        "out_of_range": "The date must be between 1970 and 9000.",
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"example": DATE_EXAMPLE, **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            in_utc = parsed.astimezone(UTC)
        except OverflowError:
            raise self.make_error("out_of_range") from None
        if not EARLIEST <= in_utc < LATEST:
            raise self.make_error("out_of_range")
        return in_utc


def described_string(description: str, *, nullable: bool = False) -> fields.String:
    """A string every answer carries (null allowed where `nullable`), described in the OpenAPI
    document: one way to write the many such fields."""
    return fields.String(required=True, allow_none=nullable, metadata={"description": description})


def next_cursor() -> fields.String:
    return described_string(
        "Pass as `cursor` for the next page; null on the last page.", nullable=True
    )
