"""A client for every Kaleyra Video operation, over teleconsult's outbound HTTP client.

`teleconsult.outbound` gives every call a timeout, retries only what is safe to
repeat, and turns failures into 502/503/504 errors naming the operation; this
module says, per operation, which call it is and whether repeating it is safe.
The API key travels in the `apikey` header and appears nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from teleconsult.plugin import CallPolicy, Credentials, NotFound, OutboundClient, RoomSpec
from teleconsult_bandyer import kaleyra

PROVIDER = "bandyer"


@dataclass(frozen=True)
class ClientOptions:
    base_url: str
    api_key: str = field(repr=False)
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    backoff_seconds: float = 0.2


class KaleyraClient:
    def __init__(self, options: ClientOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.http = OutboundClient(
            PROVIDER,
            session,
            options.base_url,
            CallPolicy(
                timeout_seconds=options.timeout_seconds,
                max_attempts=options.max_attempts,
                backoff_seconds=options.backoff_seconds,
            ),
            headers={kaleyra.API_KEY_HEADER: options.api_key},
        )

    async def close(self) -> None:
        await self.http.close()

    # -- operations (kaleyra.md) ----------------------------------------------------------------

    async def create_user(self, user_id: str, role: str) -> str:
        """Create a user with our own id; one that already exists (409) counts as created."""
        answer = await self.http.call(
            "create a user", "POST", kaleyra.USERS,
            json_body=kaleyra.create_user_body(user_id, role), safe=True, also_ok={409},
        )  # fmt: skip
        if answer.status == 409:
            return user_id
        return self.http.read("create a user", answer, kaleyra.created_user_id)

    async def list_users(self, limit: int = 1) -> object:
        answer = await self.http.call(
            "list users",
            "GET",
            kaleyra.USERS,
            params={"offset": "0", "limit": str(limit)},
            safe=True,
        )
        return answer.body

    async def create_room(self, spec: RoomSpec) -> kaleyra.RoomAnswer:
        answer = await self.http.call(
            "create a room",
            "POST",
            kaleyra.ROOMS,
            json_body=kaleyra.create_room_body(spec),
            safe=False,
        )
        return self.http.read("create a room", answer, kaleyra.created_room)

    async def get_room(self, room_id: str) -> dict[str, Any]:
        answer = await self.http.call(
            "get a room", "GET", _path(kaleyra.ROOM, room_id=room_id), safe=True
        )
        return self.http.read("get a room", answer, kaleyra.room_details)

    async def delete_room(self, room_id: str) -> None:
        """Delete a room; one already gone (404) counts as deleted."""
        await self.http.call(
            "delete a room",
            "DELETE",
            _path(kaleyra.ROOM, room_id=room_id),
            safe=True,
            also_ok={404},
        )

    async def create_sdk_credentials(self, user_id: str, expires_in: int) -> Credentials:
        # Each call mints a new token: repeating one that may have succeeded does no harm.
        operation = "create SDK credentials"
        answer = await self.http.call(
            operation, "POST", kaleyra.SDK_CREDENTIALS,
            json_body=kaleyra.credentials_body(user_id, expires_in), safe=True,
        )  # fmt: skip
        token, expires_at, provider_user_id = self.http.read(operation, answer, kaleyra.credentials)
        return Credentials(token, expires_at, provider_user_id)

    async def list_uploads(self, room_id: str) -> list[str]:
        answer = await self.http.call(
            "list the room's files", "GET", kaleyra.UPLOADS,
            params={kaleyra.ROOM_ID_QUERY: room_id}, safe=True,
        )  # fmt: skip
        return self.http.read("list the room's files", answer, kaleyra.upload_keys)

    async def delete_upload(self, key: str) -> None:
        await self.http.call(
            "delete a file", "DELETE", _path(kaleyra.UPLOAD, key=key), safe=True, also_ok={404}
        )

    async def upload_virtual_background(
        self, content: bytes, filename: str, content_type: str
    ) -> dict[str, object]:
        form = aiohttp.FormData()
        form.add_field(
            kaleyra.VIRTUAL_BACKGROUND_FIELD, content, filename=filename, content_type=content_type
        )
        answer = await self.http.call(
            "upload a virtual background", "POST", kaleyra.VIRTUAL_BACKGROUNDS,
            form=form, safe=False,
        )  # fmt: skip
        return self.http.read("upload a virtual background", answer, kaleyra.background)

    async def set_default_background(self, alias: str) -> dict[str, object]:
        answer = await self.http.call(
            "set the default background", "PUT", kaleyra.COMPANY,
            json_body={kaleyra.BACKGROUND_ALIAS: alias}, safe=True, also_ok={404},
        )  # fmt: skip
        if answer.status == 404:
            raise NotFound(f"background_alias {alias!r} names no background of the company.")
        return self.http.read("set the default background", answer, kaleyra.company)


def _path(template: str, **values: str) -> str:
    return template.format(**{name: quote(value, safe="") for name, value in values.items()})
