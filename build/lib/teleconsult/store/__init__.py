"""Storage: pick a store by the scheme of STORE_URL."""

from __future__ import annotations

from teleconsult.errors import ConfigurationError
from teleconsult.settings import Settings
from teleconsult.store.base import Store, VersionConflict
from teleconsult.store.sqlite import SCHEME as SQLITE_SCHEME
from teleconsult.store.sqlite import SQLiteStore, sqlite_path

__all__ = ["Store", "VersionConflict", "check_store_url", "open_store"]


def check_store_url(url: str) -> None:
    """Fail at start, with a line naming STORE_URL, on a URL no store understands."""
    if url.startswith(SQLITE_SCHEME):
        try:
            sqlite_path(url)
        except ValueError as error:
            raise ConfigurationError(f"STORE_URL={url!r} is not a SQLite URL: {error}.") from None
        return
    raise ConfigurationError(
        f"STORE_URL={url!r} has a scheme no store handles; use sqlite:///<path>."
    )


async def open_store(settings: Settings) -> Store:
    check_store_url(settings.store_url)
    return await SQLiteStore.open(
        settings.store_url, settings.teleconsultations_collection, settings.user_map_collection
    )
