"""In-process stand-ins for the services the auth0 identity provider calls.

`FakeAuth0Client` is the platform's auth0-client service, `FakeManagementApi`
Auth0's Management API (token, users, roles), `FakeUsersCrud` the collection
that resolves custom user ids. Each records what it received.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


def received(request: web.Request, body: Any = None) -> Received:
    headers = {name.lower(): value for name, value in request.headers.items()}
    return Received(request.method, request.path, dict(request.query), headers, body)


@dataclass
class FakeAuth0Client:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/users/{user_id}", self._user)
        return app

    async def _user(self, request: web.Request) -> web.Response:
        self.received.append(received(request))
        if self.fail_with:
            return web.json_response({"message": "injected"}, status=self.fail_with.pop(0))
        user = self.users.get(request.match_info["user_id"])
        if user is None:
            return web.json_response({"message": "user not found"}, status=404)
        return web.json_response(user)


@dataclass
class FakeManagementApi:
    client_id: str = "m2m-client"
    client_secret: str = "m2m-secret"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    token_lifetime: int = 86400
    rate_limited: int = 0
    """How many user lookups to answer 429 before serving again."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/api/v2/users/{user_id}", self._user)
        app.router.add_get("/api/v2/users/{user_id}/roles", self._roles)
        return app

    revoked: int = 0

    def revoke_tokens(self) -> None:
        self.revoked += len(self.issued)
        self.issued.clear()

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(received(request, body))
        if (body.get("client_id"), body.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return web.json_response({"error": "access_denied"}, status=401)
        token = f"token-{self.revoked + len(self.issued) + 1}"
        self.issued.append(token)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _authorized(self, request: web.Request) -> bool:
        self.received.append(received(request))
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self.issued

    async def _user(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Invalid token"}, status=401)
        if self.rate_limited:
            self.rate_limited -= 1
            reset = str(int(time.time()))  # already reset: retry at once
            return web.json_response(
                {"message": "Too Many Requests"}, status=429, headers={"x-ratelimit-reset": reset}
            )
        user = self.users.get(request.match_info["user_id"])
        if user is None:
            return web.json_response({"message": "The user does not exist."}, status=404)
        return web.json_response(user)

    async def _roles(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"message": "Invalid token"}, status=401)
        names = self.roles.get(request.match_info["user_id"], [])
        return web.json_response([{"id": f"rol_{n}", "name": n} for n in names])


@dataclass
class FakeUsersCrud:
    """A CRUD collection of users: `GET /?_id=...` answers the matching records."""

    records: list[dict[str, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._find)
        return app

    async def _find(self, request: web.Request) -> web.Response:
        self.received.append(received(request))
        found = [
            record
            for record in self.records
            if all(str(record.get(k)) == v for k, v in request.query.items())
        ]
        return web.json_response(found)
