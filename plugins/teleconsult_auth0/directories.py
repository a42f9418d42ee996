"""Where the auth0 identity provider looks users up: the auth0-client service or Auth0 itself.

Both answer the same question, "who is this user id?", with a `UserRecord` or
None for an unknown id. Every call goes through `teleconsult.outbound`, so it has
a timeout, safe retries, and failures that name the operation (502/503/504).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from multidict import CIMultiDictProxy

from teleconsult.plugin import Caller, OutboundClient, UnexpectedAnswer

TOKEN_MARGIN_SECONDS = 60
"""A Management API token is renewed this long before it expires."""


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    groups: tuple[str, ...]
    name: str = field(repr=False)


class Directory(Protocol):
    async def find(self, user_id: str, caller: Caller) -> UserRecord | None:
        """The user with this id, or None when there is none."""
        ...

    async def close(self) -> None: ...


def groups_of(user: Mapping[str, Any]) -> tuple[str, ...]:
    """Groups from `groups`, else `app_metadata.groups`; anything else means none."""
    groups = user.get("groups")
    if groups is None and isinstance(user.get("app_metadata"), dict):
        groups = user["app_metadata"].get("groups")
    if not isinstance(groups, list):
        return ()
    return tuple(group for group in groups if isinstance(group, str) and group)


def name_of(user: Mapping[str, Any]) -> str:
    for key in ("name", "nickname"):
        value = user.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UnexpectedAnswer(f"expected a JSON object, got {type(body).__name__}")
    return body


class Auth0ClientDirectory:
    """The platform's auth0-client service: `GET http://<AUTH_SERVICE><path>`."""

    def __init__(
        self,
        http: OutboundClient,
        user_path: str,
        default_client_type: str | None,
        proxied_headers: Sequence[str],
    ) -> None:
        self.http = http
        self.user_path = user_path
        self.default_client_type = default_client_type
        self.proxied_headers = tuple(proxied_headers)

    async def find(self, user_id: str, caller: Caller) -> UserRecord | None:
        operation = "look up a user"
        answer = await self.http.call(
            operation,
            "GET",
            self.user_path,
            path_values={"userId": user_id},
            safe=True,
            headers=self._forwarded(caller.headers),
            also_ok={404},
        )
        if answer.status == 404:
            return None
        user = self.http.read(operation, answer, _object)
        return UserRecord(user_id=user_id, groups=groups_of(user), name=name_of(user))

    def _forwarded(self, headers: Mapping[str, str]) -> dict[str, str]:
        forwarded = {name: headers[name] for name in self.proxied_headers if name in headers}
        client_type = headers.get("client-type") or self.default_client_type
        if client_type:
            forwarded["client-type"] = client_type
        return forwarded

    async def close(self) -> None:
        await self.http.close()


@dataclass(frozen=True)
class ManagementCredentials:
    domain: str
    client_id: str
    client_secret: str = field(repr=False)


class ManagementApiDirectory:
    """Auth0's Management API v2, with a client-credentials token cached until near expiry."""

    def __init__(
        self, http: OutboundClient, credentials: ManagementCredentials, groups_from_roles: bool
    ) -> None:
        self.http = http
        self.credentials = credentials
        self.groups_from_roles = groups_from_roles
        self._token: tuple[str, float] | None = None  # (token, monotonic expiry)
        self._token_lock = asyncio.Lock()  # one token request at a time, not correctness

    async def find(self, user_id: str, caller: Caller) -> UserRecord | None:
        path = "/api/v2/users/{userId}"
        user = await self._get("look up a user", path, user_id)
        if user is None:
            return None
        groups = groups_of(_object(user))
        if self.groups_from_roles:
            roles = await self._get("look up a user's roles", path + "/roles", user_id)
            groups = tuple(
                role["name"]
                for role in (roles if isinstance(roles, list) else [])
                if isinstance(role, dict) and isinstance(role.get("name"), str)
            )
        return UserRecord(user_id=user_id, groups=groups, name=name_of(_object(user)))

    async def _get(self, operation: str, path: str, user_id: str) -> object | None:
        refused: str | None = None
        for _ in range(2):  # once, and once more with a new token if this one was refused
            token = await self._access_token(refused=refused)
            answer = await self.http.call(
                operation, "GET", path, path_values={"userId": user_id}, safe=True,
                headers={"Authorization": f"Bearer {token}"}, also_ok={401, 404},
            )  # fmt: skip
            if answer.status == 404:
                return None
            if answer.status != 401:
                return self.http.read(operation, answer, lambda body: body)
            refused = token
        return self.http.read(operation, answer, _refused)

    async def _access_token(self, *, refused: str | None) -> str:
        """The cached token, unless it expired or is the one just `refused` (then a new one)."""
        async with self._token_lock:
            now = time.monotonic()
            if self._token is not None and self._token[0] != refused and now < self._token[1]:
                return self._token[0]
            operation = "get a Management API token"
            answer = await self.http.call(
                operation, "POST", "/oauth/token", safe=True,
                json_body={
                    "grant_type": "client_credentials",
                    "client_id": self.credentials.client_id,
                    "client_secret": self.credentials.client_secret,
                    "audience": f"https://{self.credentials.domain}/api/v2/",
                },
            )  # fmt: skip
            token, lifetime = self.http.read(operation, answer, _token)
            self._token = (token, now + max(0, lifetime - TOKEN_MARGIN_SECONDS))
            return token

    async def close(self) -> None:
        await self.http.close()


def _token(body: object) -> tuple[str, int]:
    answer = _object(body)
    token, lifetime = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(token, str) or not isinstance(lifetime, int):
        raise UnexpectedAnswer("no access_token and expires_in")
    return token, lifetime


def _refused(body: object) -> object:
    raise UnexpectedAnswer("the Management API refused a fresh token (HTTP 401)")


def ratelimit_reset_wait(headers: CIMultiDictProxy[str]) -> float | None:
    """Auth0's `x-ratelimit-reset` is the epoch second when the limit resets."""
    value = headers.get("x-ratelimit-reset")
    if value is None:
        return None
    try:
        return max(0.0, float(value) - time.time())
    except ValueError:
        return None
