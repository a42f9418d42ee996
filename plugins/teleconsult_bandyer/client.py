"""A client for every Kaleyra Video operation, over teleconsult's outbound HTTP client.

`teleconsult.outbound` gives every call a timeout, retries only what is safe to
repeat, and turns failures into 502/503/504 errors naming the operation; this
module says, per operation, which call it is and whether repeating it is safe.
The API key travels in the `apikey` header and appears nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from teleconsult.plugin import (
    CallPolicy,
    Credentials,
    NotFound,
    OutboundClient,
    ProviderError,
    RoomSpec,
    error_message,
    shape,
)
from teleconsult_bandyer import kaleyra

PROVIDER = "bandyer"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientOptions:
    base_url: str
    api_key: str = field(repr=False)
    policy: CallPolicy = field(default_factory=CallPolicy)


@dataclass(frozen=True)
class KaleyraRoom:
    room_id: str
    links: Mapping[str, str] = field(repr=False)
    """The participants' links the answer carried (bearer credentials: never logged)."""


class KaleyraClient:
    def __init__(self, options: ClientOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.http = OutboundClient(
            PROVIDER,
            session,
            options.base_url,
            options.policy,
            headers={kaleyra.API_KEY_HEADER: options.api_key},
        )

    async def close(self) -> None:
        await self.http.close()

    # -- operations (kaleyra.md) ----------------------------------------------------------------

    async def create_user(self, user_id: str, role: str) -> str:
        """Create a user with our own id; an answer saying the id exists counts as created."""
        operation = "create a user"
        answer = await self.http.call(
            operation, "POST", kaleyra.USERS,
            json_body=kaleyra.create_user_body(user_id, role), safe=True, also_ok={400, 409, 422},
        )  # fmt: skip
        if answer.status in (400, 409, 422):
            if kaleyra.says_user_exists(answer.status, answer.body):
                return user_id
            message = error_message(answer.body)
            raise ProviderError(
                PROVIDER, operation, "bad_answer",
                f"HTTP {answer.status}" + (f": {message}" if message else ""),
            )  # fmt: skip
        return self.http.read(operation, answer, kaleyra.created_user_id)

    async def list_users(self, limit: int = 1) -> object:
        answer = await self.http.call(
            "list users",
            "GET",
            kaleyra.USERS,
            params={"offset": "0", "limit": str(limit)},
            safe=True,
        )
        return answer.body

    async def create_room(self, spec: RoomSpec) -> KaleyraRoom:
        """Kaleyra names the room, so an answer that comes after the timeout is still read:
        its `ProviderError.late_id` is the room's id, for the core to delete the room."""
        answer = await self.http.call(
            "create a room",
            "POST",
            kaleyra.ROOMS,
            json_body=kaleyra.create_room_body(spec),
            safe=False,
            late=lambda late: kaleyra.created_room(late.body).room_id,
        )
        room = self.http.read("create a room", answer, kaleyra.created_room)
        if room.room_id is None:
            # Without an id the room cannot be deleted: say what came back (never its values),
            # and let the core count the room that may be left (the reconciler's accounting).
            log.error("Kaleyra answered a room creation without a room id: %s", shape(answer.body))
            raise ProviderError(
                PROVIDER, "create a room", "bad_answer",
                "the answer has no room id (docs/operations.md: a room may be left)",
                may_have_acted=True,
            )  # fmt: skip
        return KaleyraRoom(room.room_id, room.links)

    async def get_room(self, room_id: str) -> dict[str, Any]:
        answer = await self.http.call(
            "get a room", "GET", kaleyra.ROOM, path_values={"room_id": room_id}, safe=True
        )
        return self.http.read("get a room", answer, kaleyra.room_details)

    async def delete_room(self, room_id: str) -> None:
        """Delete a room; one already gone (404) counts as deleted."""
        await self.http.call(
            "delete a room",
            "DELETE",
            kaleyra.ROOM,
            path_values={"room_id": room_id},
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
        """Every file of the room: v2 lists are paginated, so every page is read."""
        operation = "list the room's files"
        keys: list[str] = []
        for _ in range(kaleyra.MAX_PAGES):
            params = {
                kaleyra.ROOM_ID_QUERY: room_id,
                "offset": str(len(keys)),  # a page may hold fewer than asked for
                "limit": str(kaleyra.PAGE_SIZE),
            }
            answer = await self.http.call(
                operation, "GET", kaleyra.UPLOADS, params=params, safe=True
            )
            found, more = self.http.read(operation, answer, kaleyra.upload_page)
            keys.extend(found)
            if not more or not found:
                return keys
        raise ProviderError(
            PROVIDER, operation, "bad_answer", f"more than {kaleyra.MAX_PAGES} pages of files"
        )

    async def delete_upload(self, key: str) -> None:
        await self.http.call(
            "delete a file", "DELETE", kaleyra.UPLOAD,
            path_values={"key": key}, safe=True, also_ok={404},
        )  # fmt: skip

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
            json_body={kaleyra.DEFAULT_BACKGROUND: alias}, safe=True, also_ok={404},
        )  # fmt: skip
        if answer.status == 404:
            raise NotFound(f"background_alias {alias!r} names no background of the company.")
        return self.http.read("set the default background", answer, kaleyra.company)
