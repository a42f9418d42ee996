"""Small tools providers share: derived user ids, links with options, concurrent calls,
this server's own address."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, TypeVar

from yarl import URL

if TYPE_CHECKING:
    from teleconsult.configuration.settings import Settings

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


def server_url(settings: Settings) -> str:
    """This server's own address as a browser on this machine reaches it
    (`http://<HTTP_HOST>:<HTTP_PORT>`, a wildcard host as 127.0.0.1): where the links of a
    provider that serves its own pages point when no public URL is configured."""
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a listening address, not a bind
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


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
