"""A JWKS served from the test: RSA keys made on the spot, tokens signed with them."""

from __future__ import annotations

import asyncio
import time

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "https://teleconsult.example/api"
ISSUER = "https://tenant.eu.auth0.com/"


class SigningKeys:
    """RSA keys made in the test, served as a JWKS."""

    def __init__(self) -> None:
        self.private: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.cache_control: str | None = None
        self.down = False
        self.gate = asyncio.Event()
        """While clear, each fetch (counted first) is held until the test sets it."""
        self.gate.set()
        self.held = asyncio.Event()
        """Set once a fetch is held at the closed gate."""

    def add(self, kid: str, *, publish: bool = True) -> None:
        self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def token(
        self, kid: str = "k1", extra: dict[str, object] | None = None, **claims: object
    ) -> str:
        body: dict[str, object] = {
            "sub": "doctor-1",
            "aud": AUDIENCE,
            "iss": ISSUER,
            "exp": int(time.time()) + 300,
        }
        body.update(claims)
        body.update(extra or {})
        return jwt.encode(body, self.private[kid], algorithm="RS256", headers={"kid": kid})

    def app(self) -> web.Application:
        async def jwks(request: web.Request) -> web.Response:
            self.fetches += 1
            if not self.gate.is_set():
                self.held.set()
                await self.gate.wait()
            if self.down:
                return web.json_response({"message": "down"}, status=503)
            keys = []
            for kid in self.published:
                public = jwt.algorithms.RSAAlgorithm.to_jwk(
                    self.private[kid].public_key(), as_dict=True
                )
                keys.append({**public, "kid": kid, "use": "sig", "alg": "RS256"})
            headers = {"Cache-Control": self.cache_control} if self.cache_control else None
            return web.json_response({"keys": keys}, headers=headers)

        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", jwks)
        return app
