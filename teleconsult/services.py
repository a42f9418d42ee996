"""What a running app holds, under one typed key: `request.app[SERVICES].service`.

This module imports only types (under `TYPE_CHECKING`), so the API modules that read
the key import nothing back: the building is `teleconsult.composition`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from teleconsult.api.auth import Authenticator
    from teleconsult.configuration.service_config import ServiceConfig
    from teleconsult.configuration.settings import Settings
    from teleconsult.core.attendance import AttendanceRecorder
    from teleconsult.core.audit import AuditLog
    from teleconsult.core.features import ProviderFeatures
    from teleconsult.core.listing import Listing
    from teleconsult.core.reconciler import Reconciler
    from teleconsult.core.retention import Retention
    from teleconsult.core.room_details import RoomDetailsCache
    from teleconsult.core.service import TeleconsultationService
    from teleconsult.core.store_gauges import StoreGauges
    from teleconsult.core.waiting import LinkWaiter
    from teleconsult.core.webhooks import Deliverer
    from teleconsult.observability.metrics import Metrics
    from teleconsult.observability.redaction import Redactor
    from teleconsult.providers.protocols import IdentityProvider, VideoProvider
    from teleconsult.store.base import Store


@dataclass(frozen=True)
class Services:
    """Every service of one app, built together at start-up and closed in reverse at
    shutdown (`composition.built`); nothing here is shared with another app."""

    settings: Settings
    config: ServiceConfig
    placeholders: tuple[str, ...]
    """Variables still set to a placeholder value: the replica is not ready (`/-/ready`)."""
    redactor: Redactor
    """This app's secrets and link markers, kept out of its logs and error bodies."""
    metrics: Metrics
    store: Store
    """Every aggregate, each call timed and counted."""
    listing: Listing
    audit: AuditLog
    """The audit trail: links and credentials handed out, changes."""
    video: VideoProvider
    """The chosen video provider itself (the service calls it through `measured`)."""
    identity: IdentityProvider
    features: ProviderFeatures
    room_details: RoomDetailsCache
    service: TeleconsultationService
    authenticator: Authenticator
    """Says who is calling (userIdPathInRequest or a verified token) and who may manage."""
    waiter: LinkWaiter
    """Holds `GET ?waitSeconds=` until the teleconsultation may have changed."""
    attendance: AttendanceRecorder
    """Records provider events on their teleconsultations (`POST /providers/{name}/events`)."""
    deliverer: Deliverer
    """Sends the webhook deliveries (`run_once`), and re-sends failed ones (`retry`)."""
    retention: Retention
    reconciler: Reconciler
    store_gauges: StoreGauges


SERVICES: web.AppKey[Services] = web.AppKey("services")
"""Set while the app runs (from start-up to cleanup)."""

VIDEO_PROVIDER: web.AppKey[VideoProvider] = web.AppKey("video_provider")
"""The running video provider, for a plugin's own routes (`teleconsult.plugin`): plugins
see the provider they registered, not the core's services."""
