"""The service configuration file's values that only providers read.

They are handed to a provider in its context (`ProviderContext.provider_config`) rather
than the whole `ServiceConfig`, and live apart from it so that the plugin surface loads
no schema library.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserIdMapping:
    """`customUserId`: the field of the users' CRUD a participant id is looked up by
    (`source`), and the one that holds the identity provider's id (`target`)."""

    source: str = "_id"
    target: str = "authUserId"


@dataclass(frozen=True)
class ProviderConfig:
    """The file's values that only providers read, handed to them in their context rather
    than the whole configuration: `environment` (Kaleyra's, for `bandyer`) and
    `user_id_mapping` (`customUserId`, for `auth0`)."""

    environment: str = "sandbox"
    user_id_mapping: UserIdMapping = field(default_factory=UserIdMapping)
