"""The app factory: settings and configuration in, a ready aiohttp application out."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pluggy
from aiohttp import web

from teleconsult import keys
from teleconsult.api import setup_api
from teleconsult.api.auth import Authenticator, JwksKeys, TokenRules
from teleconsult.api.caller import default_path
from teleconsult.api.hardening import setup_hardening
from teleconsult.api.middleware import request_middleware
from teleconsult.configuration.catalog import secret_names
from teleconsult.configuration.secrets import placeholder_variables
from teleconsult.configuration.service_config import PathStep, ServiceConfig
from teleconsult.configuration.settings import Settings, declared_settings
from teleconsult.configuration.webhooks import webhook_endpoints
from teleconsult.core.attendance import AttendanceRecorder
from teleconsult.core.audit import AuditLog
from teleconsult.core.clock import Clock, utc_now
from teleconsult.core.domain import WritePolicy
from teleconsult.core.events import Announcer
from teleconsult.core.features import ProviderFeatures
from teleconsult.core.listing import Listing
from teleconsult.core.reconciler import Reconciler
from teleconsult.core.retention import Retention, RetentionPolicy
from teleconsult.core.room_details import RoomDetailsCache
from teleconsult.core.roster import Rosters
from teleconsult.core.service import TeleconsultationService
from teleconsult.core.store_gauges import StoreGauges
from teleconsult.core.waiting import LinkWaiter
from teleconsult.core.webhooks import Deliverer
from teleconsult.errors import ConfigurationError
from teleconsult.observability import redaction
from teleconsult.observability.measured import Observer, measured
from teleconsult.observability.metrics import Metrics
from teleconsult.providers.manager import (
    choose,
    identity_providers,
    make_plugin_manager,
    video_providers,
)
from teleconsult.providers.outbound import CallPolicy, OutboundClient
from teleconsult.providers.protocols import (
    IdentityProvider,
    IdentityProviderPlugin,
    LiveConnections,
    ProviderContext,
    ReportEvents,
    VideoProvider,
    VideoProviderPlugin,
)
from teleconsult.providers.storage import ProviderStorage
from teleconsult.store import Store, check_store_url, open_store

MAX_JSON_BODY_BYTES = 64 * 1024
"""A request body of ours is a few KB (25 participants are about 5 KB); a larger one is a 413."""


def create_app(
    settings: Settings,
    config: ServiceConfig,
    *,
    environ: Mapping[str, str] | None = None,
    extra_plugins: Sequence[object] = (),
    clock: Clock = utc_now,
    store_factory: Callable[[Settings], Awaitable[Store]] = open_store,
) -> web.Application:
    """Build the app; providers and the store open when it starts and close when it stops.

    Everything that can be checked without I/O (provider names, the store URL)
    is checked here, so a wrong setting fails before the server listens.
    """
    plugins = choose_plugins(settings, extra_plugins)
    check_store_url(settings.store.url)
    endpoints = webhook_endpoints(settings.webhooks, config)
    environment = dict(os.environ if environ is None else environ)

    app = web.Application(
        middlewares=[request_middleware],
        client_max_size=MAX_JSON_BODY_BYTES,  # image uploads are streamed, not held whole
    )
    setup_hardening(app)
    metrics = app[keys.METRICS] = Metrics()
    app[keys.SETTINGS] = settings
    app[keys.CONFIG] = config
    app[keys.PLACEHOLDERS] = placeholder_variables(
        environment, secret_names(declared_settings(plugins.manager))
    )
    app[keys.PLUGINS] = plugins.manager
    user_id_path = config.user_id_path or default_path(settings.access.userid_header_key)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = measured_store(await store_factory(settings), metrics.observe_store())
            stack.push_async_callback(store.health.close)
            app[keys.STORE] = store
            max_age = timedelta(milliseconds=settings.webhooks.max_age_ms)
            deliverer = app[keys.DELIVERER] = Deliverer(
                store,
                endpoints,
                clock,
                metrics,
                timeout=timedelta(milliseconds=settings.webhooks.timeout_ms),
                max_age=max_age,
            )
            stack.push_async_callback(deliverer.close)
            waiter = app[keys.WAITER] = LinkWaiter(
                store.records, clock, settings.rooms.wait_refresh_ms / 1000
            )
            stack.push_async_callback(waiter.close)
            announcer = Announcer(
                [endpoint.filter for endpoint in endpoints],
                settings.rooms.policy,
                max_age,
                on_written=deliverer.wake,
                no_show_after=timedelta(milliseconds=settings.rooms.no_show_after_ms),
            )
            recorder = app[keys.ATTENDANCE] = AttendanceRecorder(
                store.records, announcer, clock, on_change=waiter.changed
            )
            video, identity = await open_providers(
                stack, plugins, settings, config, environment, clock, store, recorder.record
            )
            authenticator = _authenticator(settings, user_id_path, clock)
            stack.push_async_callback(authenticator.close)
            app[keys.AUTHENTICATOR] = authenticator
            app[keys.VIDEO_PROVIDER] = video
            app[keys.IDENTITY_PROVIDER] = identity
            measured_video = measured(video, metrics.observe_provider("video", video.name))
            service = app[keys.SERVICE] = TeleconsultationService(
                store=store,
                video=measured_video,
                identity=measured(identity, metrics.observe_provider("identity", identity.name)),
                privileges=config.privileges,
                policy=settings.rooms.policy,
                clock=clock,
                background_groups=config.groups_with_background,
                write_policy=WritePolicy(
                    admin_groups=settings.access.admin_groups,
                    allow_anonymous=settings.access.allow_anonymous_writes,
                ),
                announcer=announcer,
                on_change=waiter.changed,
            )
            retention = app[keys.RETENTION] = Retention(
                store, clock, metrics, _retention_policy(settings)
            )
            reconciler = app[keys.RECONCILER] = Reconciler(
                store, service.jobs, clock, metrics, retention=retention
            )
            if settings.rooms.reconcile_interval_ms:
                task = asyncio.create_task(
                    reconciler.run_forever(settings.rooms.reconcile_interval_ms / 1000)
                )
                stack.push_async_callback(_stop, task)
            if settings.webhooks.poll_interval_ms and endpoints:
                sending = asyncio.create_task(
                    deliverer.run_forever(settings.webhooks.poll_interval_ms / 1000)
                )
                stack.push_async_callback(_stop, sending)
            gauges = app[keys.STORE_GAUGES] = StoreGauges(store, metrics, clock)
            gauges_task = asyncio.create_task(gauges.run_forever())
            stack.push_async_callback(_stop, gauges_task)
            app[keys.FEATURES] = ProviderFeatures(service, measured_video, config.privileges)
            app[keys.ROOM_DETAILS] = RoomDetailsCache(measured_video)
            app[keys.LISTING] = Listing(store.records)
            app[keys.AUDIT] = AuditLog(store.audit, clock, settings.retention.audit_days)
            yield

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_close_live_connections)
    app.on_shutdown.append(_answer_waiting_gets)
    setup_api(app, user_id_path)
    for routes in plugins.manager.hook.register_routes():
        app.router.add_routes(routes)
    return app


def _retention_policy(settings: Settings) -> RetentionPolicy:
    ended = settings.retention.ended_days
    return RetentionPolicy(
        trashed=timedelta(days=settings.retention.trashed_days),
        ended=timedelta(days=ended) if ended is not None else None,
        audit=timedelta(days=settings.retention.audit_days),
        webhooks_failed=timedelta(days=settings.retention.webhook_days),
        webhooks_done=min(
            timedelta(milliseconds=settings.webhooks.max_age_ms),
            timedelta(days=settings.retention.webhook_days),
        ),
    )


def _authenticator(
    settings: Settings, user_id_path: tuple[PathStep, ...], clock: Clock
) -> Authenticator:
    if (
        settings.tokens.audience is None
        or settings.tokens.jwks_url is None
        or settings.tokens.issuer is None
    ):
        # The caller's groups come from a header only when a rule reads them.
        groups_needed = settings.access.manager_groups or settings.access.admin_groups
        return Authenticator(
            user_id_path,
            manager_groups=settings.access.manager_groups,
            admin_groups=settings.access.admin_groups,
            groups_header=settings.access.groups_header_key if groups_needed else None,
            allow_anonymous_writes=settings.access.allow_anonymous_writes,
        )
    keys_client = OutboundClient(
        "token keys",
        aiohttp.ClientSession(),
        settings.tokens.jwks_url,
        CallPolicy(timeout_seconds=5),
    )
    rules = TokenRules(
        audience=settings.tokens.audience,
        issuer=settings.tokens.issuer,
        user_claim=settings.tokens.user_id_claim,
        groups_claim=settings.tokens.groups_claim,
    )
    keys = JwksKeys(
        keys_client, settings.tokens.jwks_ttl_ms / 1000, clock=lambda: clock().timestamp()
    )
    return Authenticator(
        user_id_path,
        rules,
        keys,
        manager_groups=settings.access.manager_groups,
        admin_groups=settings.access.admin_groups,
    )


@dataclass(frozen=True)
class ChosenPlugins:
    manager: pluggy.PluginManager
    video: VideoProviderPlugin
    identity: IdentityProviderPlugin


def choose_plugins(settings: Settings, extra_plugins: Sequence[object] = ()) -> ChosenPlugins:
    """The installed plugins, and the providers the settings name (a name nobody registered
    stops the start). The links of any installed video provider are kept out of logs."""
    manager = make_plugin_manager(extra_plugins)
    installed_video = video_providers(manager)
    for plugin in installed_video.values():
        for marker in plugin.link_markers:
            redaction.add_link_marker(marker)
    return ChosenPlugins(
        manager,
        choose("video", "VIDEO_PROVIDER", settings.service.video_provider, installed_video),
        choose(
            "identity",
            "IDENTITY_PROVIDER",
            settings.service.identity_provider,
            identity_providers(manager),
        ),
    )


async def open_providers(
    stack: AsyncExitStack,
    plugins: ChosenPlugins,
    settings: Settings,
    config: ServiceConfig,
    environ: Mapping[str, str],
    clock: Clock,
    store: Store,
    report_events: ReportEvents | None = None,
) -> tuple[VideoProvider, IdentityProvider]:
    """Create the two chosen providers, each with its context; `stack` closes them."""
    rosters = Rosters(store.records, settings.rooms.policy)

    def context(plugin: str) -> ProviderContext:
        storage = ProviderStorage(store.provider_data, plugin, clock)
        return ProviderContext(
            settings.http.own_url, config, environ, clock, storage, rosters.roster, report_events
        )

    video = plugins.video.create(context(plugins.video.name))
    stack.push_async_callback(video.close)
    identity = plugins.identity.create(context(plugins.identity.name))
    stack.push_async_callback(identity.close)
    for plugin, provider in ((plugins.video, video), (plugins.identity, identity)):
        if provider.name != plugin.name:  # the user map is keyed by the provider's name
            raise ConfigurationError(
                f"the provider registered as {plugin.name!r} calls itself {provider.name!r}."
            )
    return video, identity


def measured_store(store: Store, observe: Observer) -> Store:
    """The store with every call of each aggregate timed and counted."""
    return Store(
        records=measured(store.records, observe),
        users=measured(store.users, observe),
        outbox=measured(store.outbox, observe),
        webhooks=measured(store.webhooks, observe),
        idempotency=measured(store.idempotency, observe),
        provider_data=measured(store.provider_data, observe),
        health=measured(store.health, observe),
        audit=measured(store.audit, observe),
        leases=measured(store.leases, observe),
    )


async def _close_live_connections(app: web.Application) -> None:
    """At the start of a stop, before the grace for requests in flight: a provider's open
    WebSockets would otherwise hold the server for the whole grace."""
    video = app.get(keys.VIDEO_PROVIDER)
    if isinstance(video, LiveConnections):
        await video.close_connections()


async def _answer_waiting_gets(app: web.Application) -> None:
    """At the start of a stop: waiting GETs answer now rather than hold the grace."""
    waiter = app.get(keys.WAITER)
    if waiter is not None:
        waiter.wake_all()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it, before the store it uses closes."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
