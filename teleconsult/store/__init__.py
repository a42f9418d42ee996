"""Storage: one protocol per aggregate (`base.py`), and a backend per package, picked by the
scheme of STORE_URL.

The backends (and their drivers) are imported when a URL is checked or a store opened, not
with this package: `teleconsult.plugin` needs `base.py` only (a test counts what it loads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from teleconsult.errors import ConfigurationError
from teleconsult.store.base import Store

if TYPE_CHECKING:
    from teleconsult.configuration.settings import Settings

__all__ = ["Store", "check_store_url", "open_store"]


def check_store_url(url: str) -> None:
    """Fail at start, with a line naming STORE_URL, on a URL no store understands."""
    from teleconsult.store.mongo import SCHEMES as MONGO_SCHEMES
    from teleconsult.store.sqlite import SCHEME as SQLITE_SCHEME
    from teleconsult.store.sqlite import sqlite_path

    if url.startswith(MONGO_SCHEMES):
        return
    if url.startswith(SQLITE_SCHEME):
        try:
            sqlite_path(url)
        except ValueError as error:
            raise ConfigurationError(f"STORE_URL is not a SQLite URL: {error}.") from None
        return
    raise ConfigurationError(
        "STORE_URL has a scheme no store handles; use sqlite:///<path>, mongodb://... "
        "or mongodb+srv://..."
    )


async def open_store(settings: Settings) -> Store:
    """The store STORE_URL names. MongoDB may be down: the store then answers 503 until it is up."""
    from teleconsult.store.mongo import SCHEMES as MONGO_SCHEMES
    from teleconsult.store.mongo import connect_mongo
    from teleconsult.store.sqlite import open_sqlite

    check_store_url(settings.store.url)
    if settings.store.url.startswith(MONGO_SCHEMES):
        return await connect_mongo(
            settings.store.url,
            settings.store.mongodb_database,
            settings.store.teleconsultations_collection,
            settings.store.user_map_collection,
            settings.store.mongodb_timeout_ms,
        )
    return await open_sqlite(
        settings.store.url,
        settings.store.teleconsultations_collection,
        settings.store.user_map_collection,
        settings.store.sqlite_synchronous,
        settings.store.sqlite_busy_timeout_ms,
    )
