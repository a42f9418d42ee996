"""Who is calling, and may they manage teleconsultations?

Without token settings the caller is whoever `userIdPathInRequest` names (the
original's behaviour: a gateway in front is trusted to set the headers). With
JWT_AUDIENCE and a key set (JWT_JWKS_URL, or AUTH0_DOMAIN's), the caller is the
subject of a verified bearer token instead: RS256 only, the key chosen by `kid`
from a cached JWKS (renewed in the background before it expires, and fetched
again when an unknown `kid` appears), and
`exp`, `iss` and `aud` checked. A missing or invalid token is a 401.

With MANAGER_GROUPS set, creating, changing and cancelling need a caller in one
of those groups (from the token's groups claim, else the GROUPS_HEADER_KEY
header); otherwise 403. The operator routes (failed webhooks, the company's
settings) need an identified member of ADMIN_GROUPS, and nobody may call them
while it is unset.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field

import jwt
from aiohttp import hdrs, web

from teleconsult.api.caller import caller_id
from teleconsult.api.fields import DOT_SEGMENT_ID
from teleconsult.configuration.service_config import PathStep
from teleconsult.configuration.tokens import JWKS_TTL_FLOOR_MS
from teleconsult.core.domain import ANONYMOUS_WRITES_REFUSED
from teleconsult.errors import (
    Forbidden,
    InvalidRequest,
    ProviderError,
    Unauthorized,
    UnexpectedAnswer,
)
from teleconsult.observability import logs
from teleconsult.providers.outbound import OutboundClient, segment_problem
from teleconsult.providers.protocols import Caller

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
"""Clock skew tolerated on `exp` and `nbf`."""
OPERATORS_UNSET = (
    "The operator routes (failed webhooks, the company's settings) are closed while "
    "ADMIN_GROUPS is unset; set it to your operators' groups to open them to their members."
)
NOT_AN_OPERATOR = (
    "Only identified members of ADMIN_GROUPS may call the operator routes (failed webhooks, "
    "the company's settings)."
)
MIN_REFRESH_SECONDS = JWKS_TTL_FLOOR_MS / 1000
"""After an unknown `kid` made us fetch the keys again (or a fetch failed), the next fetch
waits this long, so a flood of forged kids cannot turn into a flood of fetches."""
RENEW_AFTER = 0.5
"""The part of a key set's lifetime after which a request starts fetching the next set in the
background: a slow JWKS then answers while the current set still serves."""


@dataclass(frozen=True)
class TokenRules:
    audience: str
    issuer: str
    user_claim: str
    groups_claim: str


class JwksKeys:
    """The signing keys of a JWKS URL, cached for a bounded time.

    A set is trusted for `ttl_seconds` (JWT_JWKS_TTL_MS, or the answer's `Cache-Control:
    max-age` when shorter, never under MIN_REFRESH_SECONDS), so a key removed from the set
    stops verifying within that time. Past half of it, the next request starts fetching the
    set again in the background and is verified with the current one: a request with a
    known `kid` never waits for a fetch, unless the set expired unrenewed (no request came
    in its second half). One fetch runs at a time; a request that must wait (the first,
    an unknown `kid`) waits for the one under way. An unknown `kid` starts a fetch at most
    every MIN_REFRESH_SECONDS. If a fetch fails, the next waits MIN_REFRESH_SECONDS and the
    old set serves one more interval at most (an identity provider's outage does not stop
    the service at once); after that, tokens are refused.
    """

    def __init__(
        self, http: OutboundClient, ttl_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.http = http
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0
        self._kid_fetch_at: float | None = None
        self._failed_at: float | None = None
        """When the last fetch failed; None once one succeeded."""
        self._error: ProviderError | None = None
        self._fetch: asyncio.Task[None] | None = None
        """The fetch under way: each request that needs new keys waits for this one."""

    async def key(self, kid: str) -> jwt.PyJWK | None:
        now = self.clock()
        if self._stale(now):
            await self._fetched(now)
        keys = self._serving(now)
        if now >= self._renew_at:
            self._start(now)  # in the background: these keys serve meanwhile
        found = keys.get(kid)
        if found is None and (self._fetch is not None or not _recent(self._kid_fetch_at, now)):
            if self._fetch is None:
                self._kid_fetch_at = now
            await self._fetched(now)
            found = (self._keys or {}).get(kid)
        return found

    def _stale(self, now: float) -> bool:
        """No keys may serve before a fetch is tried: none yet, or they expired while the
        JWKS answered (or their extra interval after a failure ran out too)."""
        if self._keys is None or now < self._expires_at:
            return self._keys is None
        return self._failed_at is None or now >= self._expires_at + self.ttl_seconds

    def _serving(self, now: float) -> dict[str, jwt.PyJWK]:
        """The keys that verify tokens now: the set until it expires, and one more interval
        while the JWKS fails. Else the fetch's error (502/503/504)."""
        if self._keys is not None and (
            now < self._expires_at
            or (self._failed_at is not None and now < self._expires_at + self.ttl_seconds)
        ):
            return self._keys
        if self._error is not None:
            raise self._error.with_traceback(None)
        raise ProviderError(
            self.http.provider, "fetch the token signing keys", "unreachable",
            "the cached keys expired and could not be fetched again",
        )  # fmt: skip

    async def _fetched(self, now: float) -> None:
        """Wait for the fetch under way, or a new one (none within MIN_REFRESH_SECONDS of a
        failure). Shielded: a request that leaves does not stop what others wait for."""
        fetch = self._start(now)
        if fetch is not None:
            await asyncio.shield(fetch)

    def _start(self, now: float) -> asyncio.Task[None] | None:
        if self._fetch is None and not _recent(self._failed_at, now):
            # In a context of its own: the fetch serves every request, not the one starting it.
            self._fetch = asyncio.create_task(self._renew(now), context=contextvars.Context())
        return self._fetch

    async def _renew(self, now: float) -> None:
        operation = "fetch the token signing keys"
        try:
            answer = await self.http.call(operation, "GET", "", safe=True)
            keys = self.http.read(operation, answer, _rsa_keys)
        except ProviderError as error:
            self._failed_at, self._error = now, error
            if self._keys is not None:
                log.warning("token signing keys not renewed; the old ones serve: %s", error.message)
        else:
            max_age = _max_age(answer.headers.get(hdrs.CACHE_CONTROL, ""))
            ttl = self.ttl_seconds if max_age is None else min(self.ttl_seconds, max_age)
            ttl = max(ttl, MIN_REFRESH_SECONDS)  # max-age=0 is no flood either
            self._keys, self._failed_at, self._error = keys, None, None
            self._renew_at, self._expires_at = now + ttl * RENEW_AFTER, now + ttl
        finally:
            self._fetch = None

    async def close(self) -> None:
        if self._fetch is not None:
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch
        await self.http.close()


def user_id_header(steps: tuple[PathStep, ...]) -> str | None:
    """The header `userIdPathInRequest` reads the caller's id from, if it starts with one."""
    if len(steps) >= 2 and steps[0] == PathStep("headers", "object"):
        source = steps[1].source
        return source if isinstance(source, str) else None
    return None


def _checked(user_id: str | None, source: str) -> str | None:
    """The caller's id, unless a provider could not be asked about it (`segment_problem`):
    then a 400 naming where it came from (a header, a token's claim)."""
    if user_id is not None and segment_problem(user_id) is not None:
        raise InvalidRequest(f"{source}: {DOT_SEGMENT_ID}", path=source)
    return user_id


def _recent(moment: float | None, now: float) -> bool:
    return moment is not None and now - moment < MIN_REFRESH_SECONDS


def _max_age(cache_control: str) -> float | None:
    """`max-age` of a Cache-Control header, in seconds; None when absent or unreadable."""
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().isdigit():
            return float(value.strip())
    return None


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


@dataclass(eq=False)
class Authenticator:
    user_id_path: tuple[PathStep, ...]
    token_rules: TokenRules | None = None
    keys: JwksKeys | None = None
    _: KW_ONLY
    manager_groups: frozenset[str] = frozenset()
    admin_groups: frozenset[str] = frozenset()
    groups_header: str | None = None
    """The header with the caller's groups, when a rule needs them (MANAGER_GROUPS,
    ADMIN_GROUPS) and tokens are not verified; None: groups unknown."""
    allow_anonymous_writes: bool = False
    _single_headers: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._single_headers = tuple(
            name.lower()
            for name in (hdrs.AUTHORIZATION, self.groups_header, user_id_header(self.user_id_path))
            if name
        )

    async def caller(self, request: web.Request) -> Caller:
        """Who is calling; from now on every log line of the request names them."""
        caller = await self._caller(request)
        logs.know_caller(caller.id)
        return caller

    async def _caller(self, request: web.Request) -> Caller:
        for name in self._single_headers:
            if len(request.headers.getall(name, ())) > 1:
                raise InvalidRequest(
                    f"The request has more than one {name} header; send one.", path=name
                )
        if self.token_rules is None or self.keys is None:
            return Caller(
                _checked(
                    caller_id(request.headers, self.user_id_path),
                    user_id_header(self.user_id_path) or "userIdPathInRequest",
                ),
                request.headers,
                groups=self._header_groups(request.headers),
            )
        claims = await self._verified_claims(
            request.headers.get(hdrs.AUTHORIZATION), self.token_rules, self.keys
        )
        user_id = claims.get(self.token_rules.user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise Unauthorized(f"The bearer token has no {self.token_rules.user_claim} claim.")
        groups = claims.get(self.token_rules.groups_claim)
        return Caller(
            _checked(user_id, self.token_rules.user_claim),
            request.headers,
            groups=frozenset(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else frozenset(),
        )

    def authorize_write(self, caller: Caller) -> None:
        """Any change (teleconsultations, uploads, company settings) needs a caller who says
        who they are, unless ALLOW_ANONYMOUS_WRITES; and one in MANAGER_GROUPS, when set."""
        if caller.id is None and not self.allow_anonymous_writes:
            raise Forbidden(ANONYMOUS_WRITES_REFUSED)
        if not self.manager_groups:
            return
        if not (caller.groups or frozenset()) & self.manager_groups:
            raise Forbidden(
                "Only members of the manager groups "
                f"({', '.join(sorted(self.manager_groups))}) may create, change or cancel "
                "teleconsultations."
            )

    def authorize_operator(self, caller: Caller) -> None:
        """The operator routes (failed webhooks, the company's settings) reach every
        teleconsultation and the whole company: only an identified member of ADMIN_GROUPS may
        call them, and nobody while it is unset. MANAGER_GROUPS does not open them."""
        if not self.admin_groups:
            raise Forbidden(OPERATORS_UNSET)
        if caller.id is None or not (caller.groups or frozenset()) & self.admin_groups:
            raise Forbidden(NOT_AN_OPERATOR)

    def is_manager(self, caller: Caller) -> bool:
        """In MANAGER_GROUPS (never when it is unset): may list anyone's teleconsultations
        and read audit trails."""
        return bool((caller.groups or frozenset()) & self.manager_groups)

    def _header_groups(self, headers: Mapping[str, str]) -> frozenset[str] | None:
        if self.groups_header is None:
            return None
        value = headers.get(self.groups_header, "")
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
