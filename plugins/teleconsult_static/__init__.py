"""Identity from the request: each participant arrives with their groups and full name.

The original service's mode "without auth0". The caller is trusted to say who
each participant is, so use it only behind a caller you trust.
"""

from __future__ import annotations

from collections.abc import Sequence

from teleconsult.plugin import (
    Caller,
    Identity,
    IdentityProviderPlugin,
    InvalidRequest,
    NoSettings,
    ParticipantEntry,
    ProviderContext,
    hookimpl,
)


class StaticIdentity:
    name = "static"

    @property
    def resolves_bare_ids(self) -> bool:
        return False

    async def identify(self, entries: Sequence[ParticipantEntry], caller: Caller) -> list[Identity]:
        identities = []
        for entry in entries:
            if not entry.groups:
                raise InvalidRequest(
                    f"{entry.path}.groups is required with the static identity provider: "
                    "a non-empty array of group names.",
                    path=f"{entry.path}.groups",
                )
            if not entry.full_name:
                raise InvalidRequest(
                    f"{entry.path}.fullName is required with the static identity provider.",
                    path=f"{entry.path}.fullName",
                )
            identities.append(
                Identity(
                    external_id=entry.external_id, groups=entry.groups, full_name=entry.full_name
                )
            )
        return identities

    async def close(self) -> None:
        return None


def _create(context: ProviderContext[NoSettings]) -> StaticIdentity:
    return StaticIdentity()


@hookimpl
def register_identity_providers() -> list[IdentityProviderPlugin[NoSettings]]:
    return [
        IdentityProviderPlugin(
            name="static",
            create=_create,
            settings=NoSettings,
            description="Groups and full name come in the request.",
        )
    ]
