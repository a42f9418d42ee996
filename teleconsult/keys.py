"""Typed keys of what the app holds, for handlers and plugin routes to find it."""

from __future__ import annotations

import pluggy
from aiohttp import web

from teleconsult.api.auth import Authenticator
from teleconsult.api.cors import CorsPolicy
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
from teleconsult.providers.protocols import IdentityProvider, VideoProvider
from teleconsult.store import Store

SETTINGS = web.AppKey("settings", Settings)
CONFIG = web.AppKey("config", ServiceConfig)
PLUGINS = web.AppKey("plugins", pluggy.PluginManager)
STORE = web.AppKey("store", Store)
VIDEO_PROVIDER = web.AppKey("video_provider", VideoProvider)
IDENTITY_PROVIDER = web.AppKey("identity_provider", IdentityProvider)
SERVICE = web.AppKey("service", TeleconsultationService)
METRICS = web.AppKey("metrics", Metrics)
RECONCILER = web.AppKey("reconciler", Reconciler)
RETENTION = web.AppKey("retention", Retention)
STORE_GAUGES = web.AppKey("store_gauges", StoreGauges)
DELIVERER = web.AppKey("deliverer", Deliverer)
"""Sends the webhook deliveries (`run_once`), and re-sends failed ones (`retry`)."""
WAITER = web.AppKey("waiter", LinkWaiter)
"""Holds `GET ?waitSeconds=` until the teleconsultation may have changed."""
ATTENDANCE = web.AppKey("attendance", AttendanceRecorder)
"""Records provider events on their teleconsultations (`POST /providers/{name}/events`)."""
FEATURES = web.AppKey("features", ProviderFeatures)
ROOM_DETAILS = web.AppKey("room_details", RoomDetailsCache)
LISTING = web.AppKey("listing", Listing)
AUDIT = web.AppKey("audit", AuditLog)
"""The audit trail: links and credentials handed out, changes."""
PLACEHOLDERS = web.AppKey("placeholders", tuple[str, ...])
"""Variables still set to a placeholder value: the replica is not ready (`/-/ready`)."""
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
"""Says who is calling (userIdPathInRequest or a verified token) and who may manage."""
CORS = web.AppKey("cors", CorsPolicy)
"""Set when CORS_ALLOWED_ORIGINS lists origins: the API answers their pages' calls."""
