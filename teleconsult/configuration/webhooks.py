"""The webhook endpoints: `WEBHOOK_URL` (named `default`, every event) and the configuration
file's `webhooks`, each with its URL, its event filter and its signing secret.

Resolved when the app is built, so a bad endpoint stops the start with one line
(`teleconsult check-config` runs the same checks). Secrets are never part of a
message or a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from teleconsult.configuration.service_config import ServiceConfig
from teleconsult.configuration.settings import (
    Settings,
    check_webhook_secret,
    read_secret_file,
    secure_url,
)
from teleconsult.core.events import EVENT_TYPES, EndpointFilter
from teleconsult.errors import ConfigurationError

DEFAULT = "default"
"""The name of the endpoint `WEBHOOK_URL` gives."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    secret: str = field(repr=False)
    types: frozenset[str]

    @property
    def filter(self) -> EndpointFilter:
        return EndpointFilter(self.name, self.types)


def webhook_endpoints(settings: Settings, config: ServiceConfig) -> tuple[Endpoint, ...]:
    """Every endpoint events go to; none when neither WEBHOOK_URL nor `webhooks` is set."""
    endpoints = []
    if settings.webhook_url is not None and settings.webhook_secret is not None:
        endpoints.append(
            Endpoint(DEFAULT, settings.webhook_url, settings.webhook_secret, frozenset(EVENT_TYPES))
        )
    for index, configured in enumerate(config.webhooks):
        where = f"the configuration file's webhooks[{index}]"
        if any(endpoint.name == configured.name for endpoint in endpoints):
            taken_by = "WEBHOOK_URL's endpoint" if configured.name == DEFAULT else "another"
            raise ConfigurationError(
                f"{where}: the name {configured.name!r} is taken by {taken_by}; "
                "give each endpoint its own name."
            )
        url = secure_url(f"{where}.url", configured.url)
        if configured.secret_file is not None:
            secret = read_secret_file(f"{where}.secretFile", configured.secret_file)
            check_webhook_secret(f"The secret in {where}.secretFile", secret)
        elif settings.webhook_secret is not None:
            secret = settings.webhook_secret
        else:
            raise ConfigurationError(
                f"{where} ({configured.name}) needs a signing secret: set WEBHOOK_SECRET, or "
                "give the endpoint a secretFile."
            )
        endpoints.append(Endpoint(configured.name, url, secret, configured.events))
    return tuple(endpoints)
