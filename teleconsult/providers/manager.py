"""One plugin manager per app: built-in and third-party plugins, loaded alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import pluggy

from teleconsult.configuration.catalog import Section, merged
from teleconsult.configuration.settings import SETTINGS
from teleconsult.errors import ConfigurationError
from teleconsult.providers import hookspecs
from teleconsult.providers.protocols import IdentityProviderPlugin, VideoProviderPlugin

ENTRY_POINT_GROUP = "teleconsult"


def make_plugin_manager(extra_plugins: Sequence[object] = ()) -> pluggy.PluginManager:
    """Load every plugin of the `teleconsult` entry point group, then `extra_plugins`.

    The built-in plugins (static, fake, ...) are declared in this project's own
    `pyproject.toml` under that group, exactly as a third-party plugin would be.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    try:
        manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for plugin in extra_plugins:
            manager.register(plugin)
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise ConfigurationError(f"plugin {error.plugin!r} is not valid: {error}") from None
    return manager


Registered = TypeVar("Registered", VideoProviderPlugin, IdentityProviderPlugin)


def _by_name(kind: str, batches: Iterable[list[Registered]]) -> dict[str, Registered]:
    found: dict[str, Registered] = {}
    for batch in batches:
        for plugin in batch:
            if plugin.name in found:
                raise ConfigurationError(
                    f"Two plugins register a {kind} provider named {plugin.name!r}."
                )
            found[plugin.name] = plugin
    return found


def video_providers(manager: pluggy.PluginManager) -> dict[str, VideoProviderPlugin]:
    return _by_name("video", manager.hook.register_video_providers())


def identity_providers(manager: pluggy.PluginManager) -> dict[str, IdentityProviderPlugin]:
    return _by_name("identity", manager.hook.register_identity_providers())


def choose(kind: str, setting: str, name: str, available: dict[str, Registered]) -> Registered:
    try:
        return available[name]
    except KeyError:
        names = ", ".join(sorted(available)) or "none"
        raise ConfigurationError(
            f"{setting}={name!r} names no installed {kind} provider (installed: {names})."
        ) from None


def declared_settings(manager: pluggy.PluginManager) -> list[Section]:
    """Every environment variable declared: the core's, then each installed provider's
    (video providers, then identity providers, by name), each once."""
    video = video_providers(manager)
    identity = identity_providers(manager)
    return merged(
        [
            Section("teleconsult", SETTINGS),
            *(
                Section(f"video provider {name} (VIDEO_PROVIDER={name})", video[name].settings)
                for name in sorted(video)
            ),
            *(
                Section(
                    f"identity provider {name} (IDENTITY_PROVIDER={name})",
                    identity[name].settings,
                )
                for name in sorted(identity)
            ),
        ]
    )
