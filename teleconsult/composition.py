"""The composition root: the one place that builds every service of an app.

Two steps. `planned` decides, without I/O, what the app is made of: the plugins and the
providers the settings name, the store URL, the webhook endpoints, the caller's id path,
the placeholders left in the environment and the app's `Redactor`; a wrong setting stops
here, before the server listens (`teleconsult check-config` stops here too). `built` then
opens the store and the providers and builds the services on them, in order, as one async
context: leaving it closes them in reverse. The app enters it at start-up
(`app.create_app`) and holds what it yields under `services.SERVICES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pluggy

from teleconsult.api.auth import Authenticator, JwksKeys, TokenRules
from teleconsult.api.caller import default_path
from teleconsult.api.revocations import remove_from_page
from teleconsult.callpage import CallPage
from teleconsult.configuration.catalog import secret_names
from teleconsult.configuration.declarations import DeclaredSettings
from teleconsult.configuration.secrets import placeholder_variables
from teleconsult.configuration.service_config import PathStep, ServiceConfig
from teleconsult.configuration.settings import Settings, declared_settings
from teleconsult.configuration.webhooks import Endpoint, webhook_endpoints
from teleconsult.core.attendance import AttendanceRecorder
from teleconsult.core.audit import AuditLog
from teleconsult.core.clock import Clock
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
from teleconsult.observability.redaction import Redactor
from teleconsult.providers.live import LiveCalls, RoomRepair
from teleconsult.providers.manager import (
    IdentityPlugin,
    VideoPlugin,
    choose,
    identity_providers,
    make_plugin_manager,
    video_providers,
)
from teleconsult.providers.outbound import CallPolicy, OutboundClient
from teleconsult.providers.protocols import (
    IdentityProvider,
    ProviderContext,
    RemoveParticipant,
    ReportEvents,
    VideoProvider,
)
from teleconsult.providers.storage import ProviderStorage
from teleconsult.services import Services
from teleconsult.store import Store, check_store_url

StoreFactory = Callable[[Settings], Awaitable[Store]]


@dataclass(frozen=True)
class ChosenPlugins:
    manager: pluggy.PluginManager
    video: VideoPlugin
    identity: IdentityPlugin


@dataclass(frozen=True)
class ProviderSettings:
    """The chosen providers' own settings objects, read once while the app is planned."""

    video: DeclaredSettings
    identity: DeclaredSettings

    def secret_values(self) -> tuple[str, ...]:
        return (*self.video.secret_values(), *self.identity.secret_values())


@dataclass(frozen=True)
class Plan:
    """What an app is made of, decided without opening anything."""

    settings: Settings
    config: ServiceConfig
    plugins: ChosenPlugins
    provider_settings: ProviderSettings
    endpoints: tuple[Endpoint, ...]
    user_id_path: tuple[PathStep, ...]
    placeholders: tuple[str, ...]
    redactor: Redactor
    call_page: CallPage
    """The call page (its catalogs read from `CALL_PAGE_TEXTS_DIR`), for the providers."""


def planned(
    settings: Settings,
    config: ServiceConfig,
    environ: Mapping[str, str] | None = None,
    extra_plugins: Sequence[object] = (),
) -> Plan:
    """Everything that can be checked without I/O, checked: provider names, the store URL,
    the webhook endpoints, then the chosen providers' own settings (their classes read from
    the environment). `environ` is the process's unless given."""
    environment = dict(os.environ if environ is None else environ)
    plugins = choose_plugins(settings, extra_plugins)
    check_store_url(settings.store.url)
    endpoints = webhook_endpoints(settings.webhooks, config)
    sections = declared_settings(plugins.manager)
    provider_settings = ProviderSettings(
        video=plugins.video.settings.from_environ(environment),
        identity=plugins.identity.settings.from_environ(environment),
    )
    markers = [
        marker
        for plugin in video_providers(plugins.manager).values()
        for marker in plugin.link_markers
    ]
    return Plan(
        settings=settings,
        config=config,
        plugins=plugins,
        provider_settings=provider_settings,
        endpoints=endpoints,
        user_id_path=config.user_id_path or default_path(settings.access.userid_header_key),
        placeholders=placeholder_variables(environment, secret_names(sections)),
        redactor=Redactor(
            [
                *settings.secret_values(),
                *provider_settings.secret_values(),
                *(endpoint.secret for endpoint in endpoints),
            ],
            markers,
        ),
        call_page=CallPage.from_settings(
            settings.call_page, config.branding, settings.ice.servers()
        ),
    )


def choose_plugins(settings: Settings, extra_plugins: Sequence[object] = ()) -> ChosenPlugins:
    """The installed plugins, and the providers the settings name (a name nobody registered
    stops the start)."""
    manager = make_plugin_manager(extra_plugins)
    return ChosenPlugins(
        manager,
        choose(
            "video", "VIDEO_PROVIDER", settings.service.video_provider, video_providers(manager)
        ),
        choose(
            "identity",
            "IDENTITY_PROVIDER",
            settings.service.identity_provider,
            identity_providers(manager),
        ),
    )


@contextlib.asynccontextmanager
async def built(plan: Plan, clock: Clock, store_factory: StoreFactory) -> AsyncIterator[Services]:
    """Open the store and the providers and build every service on them; on leaving, stop
    the background tasks and close everything in reverse.

    The context that enters (the server's main task) logs with the app's redactor from
    then on, and so does every background task started here."""
    settings, config, endpoints = plan.settings, plan.config, plan.endpoints
    redaction.use(plan.redactor)
    metrics = Metrics()
    async with AsyncExitStack() as stack:

        def in_background(work: Coroutine[Any, Any, None]) -> None:
            """Run `work` until the stack closes, its lines redacted by this app's redactor."""
            context = contextvars.copy_context()
            context.run(redaction.use, plan.redactor)
            stack.push_async_callback(_stop, asyncio.create_task(work, context=context))

        store = measured_store(await store_factory(settings), metrics.observe_store())
        stack.push_async_callback(store.health.close)
        max_age = timedelta(milliseconds=settings.webhooks.max_age_ms)
        deliverer = Deliverer(
            store,
            endpoints,
            clock,
            metrics,
            timeout=timedelta(milliseconds=settings.webhooks.timeout_ms),
            max_age=max_age,
        )
        stack.push_async_callback(deliverer.close)
        waiter = LinkWaiter(store.records, clock, settings.rooms.wait_refresh_ms / 1000)
        stack.push_async_callback(waiter.close)
        announcer = Announcer(
            [endpoint.filter for endpoint in endpoints],
            settings.rooms.policy,
            max_age,
            on_written=deliverer.wake,
            no_show_after=timedelta(milliseconds=settings.rooms.no_show_after_ms),
        )
        audit_log = AuditLog(store.audit, clock, settings.retention.audit_days)
        attendance = AttendanceRecorder(
            store.records, announcer, clock, on_change=waiter.changed, audit_log=audit_log
        )
        video, identity = await open_providers(
            stack, plan, clock, store, attendance.record, remove_from_page
        )
        authenticator = _authenticator(settings, plan.user_id_path, clock)
        stack.push_async_callback(authenticator.close)
        measured_video = measured(video, metrics.observe_provider("video", video.name))
        if isinstance(video, LiveCalls):
            metrics.watch_calls(video.call_counts)
        service = TeleconsultationService(
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
        retention = Retention(store, clock, metrics, _retention_policy(settings))
        reconciler = Reconciler(
            store,
            service.jobs,
            clock,
            metrics,
            retention=retention,
            rooms=measured_video if isinstance(measured_video, RoomRepair) else None,
        )
        if settings.rooms.reconcile_interval_ms:
            in_background(reconciler.run_forever(settings.rooms.reconcile_interval_ms / 1000))
        if settings.webhooks.poll_interval_ms and endpoints:
            in_background(deliverer.run_forever(settings.webhooks.poll_interval_ms / 1000))
        store_gauges = StoreGauges(store, metrics, clock)
        in_background(store_gauges.run_forever())
        yield Services(
            settings=settings,
            config=config,
            placeholders=plan.placeholders,
            redactor=plan.redactor,
            metrics=metrics,
            store=store,
            listing=Listing(store.records),
            audit=audit_log,
            video=video,
            identity=identity,
            features=ProviderFeatures(service, measured_video, config.privileges),
            room_details=RoomDetailsCache(measured_video),
            service=service,
            authenticator=authenticator,
            waiter=waiter,
            attendance=attendance,
            deliverer=deliverer,
            retention=retention,
            reconciler=reconciler,
            store_gauges=store_gauges,
        )


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


async def open_providers(
    stack: AsyncExitStack,
    plan: Plan,
    clock: Clock,
    store: Store,
    report_events: ReportEvents | None = None,
    remove_participant: RemoveParticipant | None = None,
) -> tuple[VideoProvider, IdentityProvider]:
    """Create the two chosen providers, each with its context (its own settings, never the
    core's); `stack` closes them."""
    plugins = plan.plugins
    rosters = Rosters(store.records, plan.settings.rooms.policy)

    def context(plugin: str, own: DeclaredSettings) -> ProviderContext[DeclaredSettings]:
        return ProviderContext(
            settings=own,
            server_url=plan.settings.http.own_url,
            provider_config=plan.config.providers,
            clock=clock,
            storage=ProviderStorage(store.provider_data, plugin, clock),
            roster=rosters.roster,
            report_events=report_events,
            remove_participant=remove_participant,
            call_page=plan.call_page,
        )

    video = plugins.video.create(context(plugins.video.name, plan.provider_settings.video))
    stack.push_async_callback(video.close)
    identity = plugins.identity.create(
        context(plugins.identity.name, plan.provider_settings.identity)
    )
    stack.push_async_callback(identity.close)
    for plugin, provider in ((plugins.video, video), (plugins.identity, identity)):
        if provider.name != plugin.name:  # the user map is keyed by the provider's name
            raise ConfigurationError(
                f"the provider registered as {plugin.name!r} calls itself {provider.name!r}."
            )
    return video, identity


def measured_store(store: Store, observe: Observer) -> Store:
    """The store with every call of each aggregate timed and counted."""
    return store.wrapped(lambda aggregate: measured(aggregate, observe))


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it, before the store it uses closes."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
