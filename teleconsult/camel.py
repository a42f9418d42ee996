"""Dataclass records under camelCase keys: how the API answers and MongoDB documents name
their fields (the original service's style), written once instead of field by field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from enum import Enum
from typing import Any, ClassVar, Protocol, TypeVar


class Record(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


R = TypeVar("R", bound=Record)


def camel_case(name: str) -> str:
    """`client_address` → `clientAddress`."""
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def camel_fields(record: Record, *names: str) -> dict[str, Any]:
    """`names` of `record` under camelCase keys, as they are (an API answer's plain fields)."""
    return {camel_case(name): getattr(record, name) for name in names}


def record_document(record: Record) -> dict[str, Any]:
    """Every field of `record` as a MongoDB document: `id` is `_id`, enums are their values
    and tuples lists."""
    document: dict[str, Any] = {}
    for field in fields(record):
        value = getattr(record, field.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        document[_key(field.name)] = value
    return document


def document_record(
    kind: type[R], document: Mapping[str, Any], **convert: Callable[[Any], Any]
) -> R:
    """The `kind` record a document of `record_document` holds; `convert` turns a stored
    value back into the field's type (a date, an enum, a tuple), and None stays None. A
    field with a default may be missing from older documents."""
    values: dict[str, Any] = {}
    for field in fields(kind):
        key = _key(field.name)
        missing = key not in document and field.default is not MISSING
        value = field.default if missing else document[key]
        if value is not None and field.name in convert:
            value = convert[field.name](value)
        values[field.name] = value
    return kind(**values)


def _key(name: str) -> str:
    return "_id" if name == "id" else camel_case(name)
