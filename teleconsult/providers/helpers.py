"""Small tools providers share: derived user ids, links with options, concurrent calls,
the window of a join token."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from yarl import URL

from teleconsult.configuration.declarations import DAY_MS, setting
from teleconsult.providers.protocols import JoinRequest

T = TypeVar("T")


async def gather_all(*calls: Awaitable[T]) -> list[T]:
    """Run calls concurrently, wait for every one, then raise the first error, if any.

    Unlike a bare gather, no call is left running unobserved after another failed.
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


def with_query(link: str, params: Mapping[str, str | None]) -> str:
    """`link` with `params` added to its query (None values left out)."""
    url = URL(link)
    given = {name: value for name, value in params.items() if value is not None}
    return str(url.update_query(given)) if given else link


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
HASHED = "h-"
DIGEST_CHARS = 32
"""The least of the digest a derived id keeps (128 bits): ids stay distinct when cut."""
"""Marks a derived id that is a digest: no id kept as it is may start with it."""


def stable_user_id(external_id: str, *, prefix: str = "", max_length: int = 128) -> str:
    """A provider user id derived from an external id, so creating a user is idempotent.

    Injective: two external ids never share a provider user (one participant must
    never get another's link or credentials). Ids within `[A-Za-z0-9._-]` and the
    length limit are kept readable, unless they start with `h-`; every other id
    becomes `h-` and the SHA-256 digest of the external id. A kept id cannot start
    with `h-`, so it can never equal a digest.
    """
    if len(prefix) + len(HASHED) + DIGEST_CHARS > max_length:
        raise ValueError(f"max_length {max_length} leaves no room for a digest after {prefix!r}")
    candidate = prefix + external_id
    if (
        not _UNSAFE.search(external_id)
        and not external_id.startswith(HASHED)
        and len(candidate) <= max_length
    ):
        return candidate
    digest = hashlib.sha256(external_id.encode()).hexdigest()
    return (prefix + HASHED + digest)[:max_length]


MAX_SHAPE_KEYS = 50


def shape(value: object, depth: int = 8) -> object:
    """An answer's shape: its keys and the types of its values, never the values themselves
    (an answer holds links and tokens). Lists show the shape of their first item."""
    if depth == 0:
        return "..."
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: shape(getattr(value, field.name), depth - 1)
            for field in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        keys = list(value)[:MAX_SHAPE_KEYS]
        return {str(key): shape(value[key], depth - 1) for key in keys}
    if isinstance(value, list | tuple):
        return [shape(value[0], depth - 1)] if value else []
    if value is None:
        return "null"
    return type(value).__name__


@dataclass(frozen=True)
class TokenWindow:
    """When a token provider's join credentials may be used: `JoinRequest.window` with the
    provider's grace and maximum lifetime, in the whole seconds of JWT claims.

    Every provider whose link is a signed token bounds it the same way, so one reading of
    the settings and one rounding serve them all: `nbf` is rounded up and `exp` down, so a
    token never opens before the lock time nor outlives the consultation's end plus grace.
    """

    grace: timedelta
    max_lifetime: timedelta

    @classmethod
    def of(cls, grace_ms: int, max_lifetime_ms: int) -> TokenWindow:
        """From the provider's settings declared with `grace_setting` and `lifetime_setting`."""
        return cls(timedelta(milliseconds=grace_ms), timedelta(milliseconds=max_lifetime_ms))

    @staticmethod
    def grace_setting(prefix: str, provider: str) -> Any:
        """Declares `<prefix>_TOKEN_GRACE_MS` of the token provider `provider`: 15 minutes,
        up to a day."""
        return setting(
            f"{prefix}_TOKEN_GRACE_MS",
            900_000,
            f"`{provider}` provider: how long after `end_date` a token still lets its holder join "
            "(15 minutes)",
            minimum=0,
            maximum=DAY_MS,
        )

    @staticmethod
    def lifetime_setting(prefix: str, provider: str) -> Any:
        """Declares `<prefix>_MAX_LIFETIME_MS`: a day, from a minute to a week."""
        return setting(
            f"{prefix}_MAX_LIFETIME_MS",
            DAY_MS,
            f"`{provider}` provider, rooms without a duration: how long after `start_date` a "
            "token still lets its holder join (a day)",
            minimum=60_000,
            maximum=7 * DAY_MS,
        )

    def claims(self, join: JoinRequest) -> tuple[int, int]:
        """`(nbf, exp)` for a token handed out for `join`, in Unix seconds."""
        opens, closes = join.window(self.grace, self.max_lifetime)
        not_before = math.ceil(opens.timestamp())
        return not_before, max(math.floor(closes.timestamp()), not_before)
