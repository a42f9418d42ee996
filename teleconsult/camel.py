"""Dataclass records under camelCase keys: how the API answers and MongoDB documents name
their fields (the original service's style), written once instead of field by field."""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Protocol, TypeVar

from teleconsult.store.documents import as_datetime


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


def document_record(kind: type[R], document: Mapping[str, Any]) -> R:
    """The `kind` record a document of `record_document` holds, each value read back as its
    field's type says (aware UTC dates, enums, tuples, dicts); None stays None. A field
    with a default may be missing from older documents."""
    hints = _field_types(kind)
    values: dict[str, Any] = {}
    for field in fields(kind):
        key = _key(field.name)
        if key not in document and field.default is not MISSING:
            values[field.name] = field.default
        else:
            values[field.name] = _typed(hints[field.name], document[key])
    return kind(**values)


@functools.cache
def _field_types(kind: type[Record]) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _typed(hint: Any, value: Any) -> Any:
    """`value` as a field of type `hint` holds it; `X | None` reads as X."""
    if value is None:
        return None
    options = [option for option in typing.get_args(hint) if option is not type(None)]
    if isinstance(hint, types.UnionType) and len(options) == 1:
        hint = options[0]
    kind = typing.get_origin(hint) or hint
    if kind is datetime:
        return as_datetime(value)
    if kind in (tuple, dict) or (isinstance(kind, type) and issubclass(kind, Enum)):
        return kind(value)
    return value


def _key(name: str) -> str:
    return "_id" if name == "id" else camel_case(name)
