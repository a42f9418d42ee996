"""Records under camelCase keys (`teleconsult.camel`): the one mapping the API answers and
the MongoDB documents share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import pytest

from teleconsult.camel import camel_case, camel_fields, document_record, record_document


class Colour(StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Sample:
    id: str
    client_address: str | None
    at: datetime
    colour: Colour
    tags: tuple[str, ...]
    last_error: str | None = None


SAMPLE = Sample("s-1", None, datetime(2026, 12, 7, tzinfo=UTC), Colour.RED, ("a", "b"))


@pytest.mark.parametrize(
    ("name", "camel"),
    [
        ("id", "id"),
        ("client_address", "clientAddress"),
        ("teleconsultation_id", "teleconsultationId"),
    ],
)
def test_camel_case(name: str, camel: str) -> None:
    assert camel_case(name) == camel


def test_camel_fields_picks_the_named_fields() -> None:
    assert camel_fields(SAMPLE, "id", "client_address") == {"id": "s-1", "clientAddress": None}


def test_a_record_round_trips_through_its_document() -> None:
    document = record_document(SAMPLE)
    assert document == {
        "_id": "s-1",
        "clientAddress": None,
        "at": datetime(2026, 12, 7, tzinfo=UTC),
        "colour": "red",
        "tags": ["a", "b"],
        "lastError": None,
    }
    assert document_record(Sample, document) == SAMPLE


def test_an_older_document_without_a_defaulted_field_reads_its_default() -> None:
    document = record_document(SAMPLE)
    del document["lastError"]
    assert document_record(Sample, document).last_error is None


def test_a_document_missing_a_required_field_is_refused() -> None:
    document = record_document(SAMPLE)
    del document["clientAddress"]
    with pytest.raises(KeyError, match="clientAddress"):
        document_record(Sample, document)


def test_values_are_read_back_as_their_fields_types() -> None:
    stored = {  # as MongoDB answers: naive UTC dates, lists, plain strings
        "_id": "s-1",
        "clientAddress": "192.0.2.1",
        "at": datetime(2026, 12, 7, 9, 30),
        "colour": "red",
        "tags": ["a"],
        "lastError": None,
    }
    record = document_record(Sample, stored)
    assert record == Sample(
        "s-1", "192.0.2.1", datetime(2026, 12, 7, 9, 30, tzinfo=UTC), Colour.RED, ("a",)
    )
    assert type(record.colour) is Colour
