"""Bearer-token verification: on when JWT_AUDIENCE is set."""

from __future__ import annotations

from dataclasses import dataclass

from teleconsult.configuration.declarations import DAY_MS, DeclaredSettings, WholeNumber, setting
from teleconsult.errors import ConfigurationError

JWKS_TTL_FLOOR_MS = 30_000
"""The token signing keys are fetched at most this often (a flood of forged `kid`s, or a JWKS
saying `max-age=0`, is no flood of fetches): a shorter JWT_JWKS_TTL_MS could not be kept."""


@dataclass(frozen=True)
class TokenDefaults:
    """Where an identity plugin's tenant publishes its keys, and the issuer its tokens carry:
    the defaults of JWT_JWKS_URL and JWT_ISSUER (`IdentityProviderPlugin.token_defaults`)."""

    jwks_url: str
    issuer: str


class TokenSettings(DeclaredSettings):
    audience: str | None = setting(
        "JWT_AUDIENCE",
        None,
        "turns on bearer-token verification: the caller is the token's subject, not a header; a "
        "missing or invalid token is a 401",
    )
    jwks_url: str | None = setting(
        "JWT_JWKS_URL",
        None,
        "where the token signing keys are (RS256, chosen by `kid`); with `AUTH0_DOMAIN`, "
        "`https://<AUTH0_DOMAIN>/.well-known/jwks.json`",
    )
    issuer: str | None = setting(
        "JWT_ISSUER",
        None,
        "the `iss` tokens must carry; with `AUTH0_DOMAIN`, `https://<AUTH0_DOMAIN>/`",
    )
    user_id_claim: str = setting(
        "JWT_USER_ID_CLAIM", "sub", "the token claim that holds the caller's id"
    )
    groups_claim: str = setting(
        "JWT_GROUPS_CLAIM",
        "groups",
        "the token claim that holds the caller's groups (for `MANAGER_GROUPS`)",
    )
    jwks_ttl_ms: WholeNumber = setting(
        "JWT_JWKS_TTL_MS",
        600_000,
        "how long fetched token signing keys are trusted (less when the JWKS answer's "
        "`Cache-Control: max-age` says so, never less than 30 s; a smaller value stops the "
        "start): a key removed from the JWKS stops verifying within this time. The keys are "
        "fetched again in the background after half of it, while the old ones serve; if the "
        "JWKS cannot be fetched, the old keys serve one more interval at most",
        minimum=JWKS_TTL_FLOOR_MS,
        maximum=DAY_MS,
    )

    @property
    def verifies(self) -> bool:
        return self.audience is not None

    def completed(self, defaults: TokenDefaults | None) -> TokenSettings:
        """These settings with an identity plugin's defaults for what is unset, checked whole:
        verification needs an audience, a key URL and an issuer; without an audience, none."""
        if self.audience is None:
            if self.jwks_url is not None:
                raise ConfigurationError(
                    "JWT_JWKS_URL needs JWT_AUDIENCE, the audience tokens carry."
                )
            return self.model_copy(update={"issuer": None})
        jwks_url = self.jwks_url or (defaults.jwks_url if defaults else None)
        issuer = self.issuer or (defaults.issuer if defaults else None)
        if jwks_url is None:
            raise ConfigurationError("JWT_AUDIENCE needs JWT_JWKS_URL (or AUTH0_DOMAIN).")
        if issuer is None:
            raise ConfigurationError("JWT_AUDIENCE needs JWT_ISSUER (or AUTH0_DOMAIN).")
        return self.model_copy(update={"jwks_url": jwks_url, "issuer": issuer})
