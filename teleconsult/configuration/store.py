"""Where teleconsultations are kept: SQLite or MongoDB, and how long a request waits for it."""

from __future__ import annotations

import contextlib
from typing import Literal
from urllib.parse import urlsplit

from teleconsult.configuration.declarations import (
    CollectionName,
    DeclaredSettings,
    WholeNumber,
    setting,
)


class StoreSettings(DeclaredSettings):
    url: str = setting(
        "STORE_URL",
        "sqlite:///teleconsult.db",
        "the store: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (the default is a "
        "file in the working directory, created on first start), or MongoDB: "
        "`mongodb://user:password@host:27017/teleconsult?replicaSet=rs0`, `mongodb+srv://...`",
        secret=True,
    )
    mongodb_database: str | None = setting(
        "MONGODB_DATABASE", None, "MongoDB database; unset = the URL's path, else `teleconsult`"
    )
    mongodb_timeout_ms: WholeNumber = setting(
        "MONGODB_TIMEOUT_MS",
        5000,
        "how long a request's MongoDB calls, together, wait for a server before the request gets "
        "a 503; once a call found no server, requests get a 503 with `Retry-After` at once "
        "until a ping (every second in the background, and `/-/ready`) reaches one",
        minimum=1,
        maximum=600_000,
    )
    teleconsultations_collection: CollectionName = setting(
        "TELECONSULTATIONS_CRUD_NAME",
        "teleconsultations",
        "collection (table) of teleconsultations",
    )
    user_map_collection: CollectionName = setting(
        "USER_ID_MAP_CRUD_NAME",
        "users",
        "collection (table) of the user map; `USER_MAP_ID_CRUD_NAME`, the original docs' other "
        "spelling, is read too",
        aliases=("USER_MAP_ID_CRUD_NAME",),
    )
    sqlite_busy_timeout_ms: WholeNumber = setting(
        "SQLITE_BUSY_TIMEOUT_MS",
        5000,
        "how long a request's SQLite calls, together, wait for the file's write lock while "
        "another process holds it (another replica on the host, a backup) before the request "
        "gets a 503",
        minimum=1,
        maximum=600_000,
    )
    sqlite_synchronous: Literal["full", "normal", "extra"] = setting(
        "SQLITE_SYNCHRONOUS",
        "full",
        "SQLite's `synchronous` mode: `full` (every acknowledged write survives a power failure), "
        "`normal` (faster; survives a crash of the process, but a power failure may lose the last "
        "writes) or `extra`",
    )

    def secret_values(self) -> tuple[str, ...]:
        """The URL, and its password alone (`mongodb://user:<password>@host`)."""
        found = super().secret_values()
        with contextlib.suppress(ValueError):
            password = urlsplit(self.url).password
            if password:
                found += (password,)
        return found
