"""The webhook endpoints: `WEBHOOK_URL` (named `default`, every event) and the configuration
file's `webhooks`, each with its URL, its event filter and its signing secret.

Resolved when the app is built, so a bad endpoint stops the start with one line
(`teleconsult check-config` runs the same checks). Secrets are never part of a
message or a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from pydantic import model_validator

from teleconsult.configuration.checks import check_webhook_secret, secure_url
from teleconsult.configuration.declarations import (
    DeclaredSettings,
    HttpsUrl,
    WholeNumber,
    kept_for_a_day,
    setting,
)
from teleconsult.configuration.secrets import read_secret_file
from teleconsult.configuration.service_config import ServiceConfig
from teleconsult.core.events import EVENT_TYPES, EndpointFilter
from teleconsult.errors import ConfigurationError

DEFAULT = "default"
"""The name of the endpoint `WEBHOOK_URL` gives."""


class WebhookSettings(DeclaredSettings):
    url: HttpsUrl | None = setting(
        "WEBHOOK_URL",
        None,
        'where each change\'s signed events are sent (README, "Webhooks"): an https URL (http '
        "for a loopback host only); unset = none (endpoints with event filters can be listed in "
        "the service configuration file's `webhooks`)",
    )
    secret: str | None = setting(
        "WEBHOOK_SECRET",
        None,
        "the Standard Webhooks signing secret: `whsec_` and 24 to 64 random bytes in base64 "
        "(`echo whsec_$(openssl rand -base64 32)`); needed by `WEBHOOK_URL` and by configured "
        "endpoints without a `secretFile` (never logged)",
        secret=True,
    )
    timeout_ms: WholeNumber = setting(
        "WEBHOOK_TIMEOUT_MS",
        5000,
        "how long a webhook receiver may take to answer a delivery before it counts as failed "
        "(and is retried)",
        minimum=100,
        maximum=60_000,
    )
    max_age_ms: WholeNumber = kept_for_a_day(
        "WEBHOOK_MAX_AGE_MS",
        "how long an event is retried, with exponential backoff and jitter, before it is marked "
        "failed (listed by `GET /webhooks/failed`): a day",
    )
    poll_interval_ms: WholeNumber = setting(
        "WEBHOOK_POLL_INTERVAL_MS",
        1000,
        "how often each replica looks in the store for events to deliver (events made by the "
        "replica itself go out at once); `0`: this replica delivers none",
        minimum=0,
        maximum=3_600_000,
    )

    @model_validator(mode="after")
    def _signed(self) -> Self:
        """A URL's events are signed: WEBHOOK_URL needs a well-formed WEBHOOK_SECRET."""
        if self.secret is not None:
            check_webhook_secret("WEBHOOK_SECRET", self.secret)
        elif self.url is not None:
            raise ValueError(
                "WEBHOOK_URL needs WEBHOOK_SECRET, the key its events are signed with."
            )
        return self


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    secret: str = field(repr=False)
    types: frozenset[str]

    @property
    def filter(self) -> EndpointFilter:
        return EndpointFilter(self.name, self.types)


def webhook_endpoints(settings: WebhookSettings, config: ServiceConfig) -> tuple[Endpoint, ...]:
    """Every endpoint events go to; none when neither WEBHOOK_URL nor `webhooks` is set."""
    endpoints = []
    if settings.url is not None and settings.secret is not None:
        endpoints.append(Endpoint(DEFAULT, settings.url, settings.secret, frozenset(EVENT_TYPES)))
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
        elif settings.secret is not None:
            secret = settings.secret
        else:
            raise ConfigurationError(
                f"{where} ({configured.name}) needs a signing secret: set WEBHOOK_SECRET, or "
                "give the endpoint a secretFile."
            )
        endpoints.append(Endpoint(configured.name, url, secret, configured.events))
    return tuple(endpoints)
