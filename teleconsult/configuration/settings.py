"""The core's settings: one typed object per concern, read once from the environment.

Each concern declares its variables (`http`, `store`, `access`, `tokens`, `rooms`,
`webhooks`, `retention`, `service`, `call_page`, `ice`, `fhir`); `Settings` holds one of each.
A bad value raises `ConfigurationError` with one line that names the variable; the CLI prints it
and exits. The core reads no plugin's variables: when VIDEO_PROVIDER or
IDENTITY_PROVIDER is unset, the installed plugins say whether the environment picks
one of theirs (`chosen_by`), and an identity plugin may give the token defaults
(`token_defaults`, Auth0's key URL and issuer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import get_type_hints

import pluggy

from teleconsult.configuration.access import AccessSettings
from teleconsult.configuration.callpage import CallPageSettings
from teleconsult.configuration.catalog import Section, Setting, defaults, merged
from teleconsult.configuration.declarations import DeclaredSettings
from teleconsult.configuration.fhir import FhirSettings
from teleconsult.configuration.http import HttpSettings
from teleconsult.configuration.ice import IceSettings
from teleconsult.configuration.retention import RetentionSettings
from teleconsult.configuration.rooms import RoomSettings
from teleconsult.configuration.service import ServiceSettings
from teleconsult.configuration.store import StoreSettings
from teleconsult.configuration.tokens import TokenSettings
from teleconsult.configuration.webhooks import WebhookSettings
from teleconsult.providers.manager import (
    environment_defaults,
    identity_providers,
    make_plugin_manager,
    video_providers,
)


@dataclass(frozen=True)
class Settings:
    """Every core setting, by concern: `settings.http.port`, `settings.store.url`..."""

    service: ServiceSettings
    http: HttpSettings
    store: StoreSettings
    access: AccessSettings
    tokens: TokenSettings
    rooms: RoomSettings
    webhooks: WebhookSettings
    retention: RetentionSettings
    call_page: CallPageSettings
    ice: IceSettings
    fhir: FhirSettings

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], plugins: pluggy.PluginManager | None = None
    ) -> Settings:
        """Read every concern from `environ`; `plugins` (else the installed ones) give the
        defaults the environment picks. The app's redactor keeps the secrets out of logs."""
        defaults = environment_defaults(plugins or make_plugin_manager(), environ)
        service = ServiceSettings.from_environ(environ)
        picked = {
            name: value
            for name, value in (
                ("video_provider", defaults.video),
                ("identity_provider", defaults.identity),
            )
            if value is not None and name not in service.model_fields_set
        }
        settings = cls(
            service=service.model_copy(update=picked),
            http=HttpSettings.from_environ(environ),
            store=StoreSettings.from_environ(environ),
            access=AccessSettings.from_environ(environ),
            tokens=TokenSettings.from_environ(environ).completed(defaults.tokens),
            rooms=RoomSettings.from_environ(environ),
            webhooks=WebhookSettings.from_environ(environ),
            retention=RetentionSettings.from_environ(environ),
            call_page=CallPageSettings.from_environ(environ),
            ice=IceSettings.from_environ(environ),
            fhir=FhirSettings.from_environ(environ),
        )
        return settings

    @property
    def concerns(self) -> tuple[DeclaredSettings, ...]:
        return tuple(getattr(self, field.name) for field in fields(self))

    def secret_values(self) -> tuple[str, ...]:
        """Every secret read (the store URL and its password, the webhook secret), for the
        app's redaction of logs and error bodies."""
        return tuple(secret for concern in self.concerns for secret in concern.secret_values())


CONCERNS: tuple[type[DeclaredSettings], ...] = tuple(get_type_hints(Settings).values())
"""The core's settings classes, in the order `--help` and docs/settings.md list them."""
CORE_SETTINGS: tuple[Setting, ...] = tuple(
    setting for concern in CONCERNS for setting in concern.declared()
)
"""Every core variable, as `--help` and docs/settings.md show it."""
DEFAULTS = defaults(CORE_SETTINGS)
"""Each core variable's default as the environment spells it, by name."""


def declared_settings(manager: pluggy.PluginManager) -> list[Section]:
    """Every environment variable declared: the core's, then each installed provider's
    (video providers, then identity providers, by name), each once."""
    video = video_providers(manager)
    identity = identity_providers(manager)
    return merged(
        [
            Section("teleconsult", CORE_SETTINGS),
            *(
                Section(
                    f"video provider {name} (VIDEO_PROVIDER={name})",
                    video[name].settings.declared(),
                )
                for name in sorted(video)
            ),
            *(
                Section(
                    f"identity provider {name} (IDENTITY_PROVIDER={name})",
                    identity[name].settings.declared(),
                )
                for name in sorted(identity)
            ),
        ]
    )
