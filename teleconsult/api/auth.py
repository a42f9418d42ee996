"""Who is calling, and may they manage teleconsultations?

Without token settings the caller is whoever `userIdPathInRequest` names (the
original's behaviour: a gateway in front is trusted to set the headers). With
JWT_AUDIENCE and a key set (JWT_JWKS_URL, or AUTH0_DOMAIN's), the caller is the
subject of a verified bearer token instead: RS256 only, the key chosen by `kid`
from a cached JWKS (fetched again once when an unknown `kid` appears), and
`exp`, `iss` and `aud` checked. A missing or invalid token is a 401.

With MANAGER_GROUPS set, creating, changing and cancelling need a caller in one
of those groups (from the token's groups claim, else the GROUPS_HEADER_KEY
header); otherwise 403.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
from aiohttp import web

from teleconsult.api.caller import caller_id
from teleconsult.config import PathStep
from teleconsult.errors import ServiceError, Unauthorized
from teleconsult.outbound import OutboundClient, UnexpectedAnswer
from teleconsult.providers import Caller

LEEWAY_SECONDS = 30
"""Clock skew tolerated on `exp` and `nbf`."""
MIN_REFRESH_SECONDS = 30
"""After an unknown `kid` made us fetch the keys again, the next one waits this long, so a
flood of forged kids cannot turn into a flood of fetches."""


class Forbidden(ServiceError):
    status = 403


@dataclass(frozen=True)
class TokenRules:
    audience: str
    issuer: str
    user_claim: str
    groups_claim: str


@dataclass(frozen=True)
class ManagerRule:
    groups: frozenset[str]
    header: str


class JwksKeys:
    """The signing keys of a JWKS URL, cached, refreshed once for an unknown `kid`."""

    def __init__(self, http: OutboundClient) -> None:
        self.http = http
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        async with self._lock:
            if self._keys is None:
                await self._fetch()
            elif kid not in self._keys and self._may_refresh():
                self._refreshed_at = time.monotonic()
                await self._fetch()
        return (self._keys or {}).get(kid)

    def _may_refresh(self) -> bool:
        return (
            self._refreshed_at is None
            or time.monotonic() - self._refreshed_at > MIN_REFRESH_SECONDS
        )

    async def _fetch(self) -> None:
        operation = "fetch the token signing keys"
        answer = await self.http.call(operation, "GET", "", safe=True)
        self._keys = self.http.read(operation, answer, _rsa_keys)

    async def close(self) -> None:
        await self.http.close()


def _rsa_keys(body: object) -> dict[str, jwt.PyJWK]:
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list):
        raise UnexpectedAnswer("no keys list")
    found = {}
    for entry in keys:
        if (
            isinstance(entry, dict)
            and entry.get("kty") == "RSA"
            and isinstance(entry.get("kid"), str)
        ):
            try:
                found[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWKError:
                continue  # a key we cannot use is skipped, not fatal
    return found


class Authenticator:
    def __init__(
        self,
        user_id_path: tuple[PathStep, ...],
        token_rules: TokenRules | None = None,
        keys: JwksKeys | None = None,
        manager: ManagerRule | None = None,
    ) -> None:
        self.user_id_path = user_id_path
        self.token_rules = token_rules
        self.keys = keys
        self.manager = manager

    async def caller(self, request: web.Request) -> Caller:
        if self.token_rules is None or self.keys is None:
            return Caller(
                caller_id(request.headers, self.user_id_path),
                request.headers,
                groups=self._header_groups(request.headers),
            )
        claims = await self._verified_claims(
            request.headers.get("Authorization"), self.token_rules, self.keys
        )
        user_id = claims.get(self.token_rules.user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise Unauthorized(f"The bearer token has no {self.token_rules.user_claim} claim.")
        groups = claims.get(self.token_rules.groups_claim)
        return Caller(
            user_id,
            request.headers,
            groups=frozenset(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else frozenset(),
        )

    def authorize_management(self, caller: Caller) -> None:
        if self.manager is None:
            return
        if not (caller.groups or frozenset()) & self.manager.groups:
            raise Forbidden(
                "Only members of the manager groups "
                f"({', '.join(sorted(self.manager.groups))}) may create, change or cancel "
                "teleconsultations."
            )

    def _header_groups(self, headers: Mapping[str, str]) -> frozenset[str] | None:
        if self.manager is None:
            return None
        value = headers.get(self.manager.header, "")
        return frozenset(group.strip() for group in value.split(",") if group.strip())

    @staticmethod
    async def _verified_claims(
        authorization: str | None, rules: TokenRules, keys: JwksKeys
    ) -> dict[str, object]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("A bearer token is required (Authorization: Bearer <token>).")
        try:
            header = jwt.get_unverified_header(token.strip())
        except jwt.PyJWTError:
            raise Unauthorized("The bearer token is not a JWT.") from None
        if header.get("alg") != "RS256":
            raise Unauthorized("The bearer token must be signed with RS256.")
        kid = header.get("kid")
        key = await keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("The bearer token was signed with an unknown key.")
        try:
            claims: dict[str, object] = jwt.decode(
                token.strip(),
                key=key.key,
                algorithms=["RS256"],
                audience=rules.audience,
                issuer=rules.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"The bearer token is not valid: {error}.") from None
        return claims

    async def close(self) -> None:
        if self.keys is not None:
            await self.keys.close()
