"""One plugin manager per app: built-in and third-party plugins, loaded alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pluggy

from teleconsult.configuration.tokens import TokenDefaults
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


VideoPlugin = VideoProviderPlugin[Any]
"""A registration, whichever settings class it names (only its own factory reads them)."""
IdentityPlugin = IdentityProviderPlugin[Any]
Registered = TypeVar("Registered", VideoPlugin, IdentityPlugin)


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


def video_providers(manager: pluggy.PluginManager) -> dict[str, VideoPlugin]:
    return _by_name("video", manager.hook.register_video_providers())


def identity_providers(manager: pluggy.PluginManager) -> dict[str, IdentityPlugin]:
    return _by_name("identity", manager.hook.register_identity_providers())


def choose(kind: str, setting: str, name: str, available: dict[str, Registered]) -> Registered:
    try:
        return available[name]
    except KeyError:
        names = ", ".join(sorted(available)) or "none"
        raise ConfigurationError(
            f"{setting}={name!r} names no installed {kind} provider (installed: {names})."
        ) from None


@dataclass(frozen=True)
class EnvironmentDefaults:
    """What the installed plugins make of an environment whose provider settings are unset:
    an environment of the original (`BANDYER_API_SECRET_KEY`, `AUTH_SERVICE`) still picks
    `bandyer` and `auth0`, and an Auth0 tenant gives the token verification's defaults."""

    video: str | None
    identity: str | None
    tokens: TokenDefaults | None


def environment_defaults(
    manager: pluggy.PluginManager, environ: Mapping[str, str]
) -> EnvironmentDefaults:
    identity = identity_providers(manager)
    tokens = (
        plugin.token_defaults(environ)
        for _, plugin in sorted(identity.items())
        if plugin.token_defaults is not None
    )
    return EnvironmentDefaults(
        video=_chosen_by(video_providers(manager), environ),
        identity=_chosen_by(identity, environ),
        tokens=next((found for found in tokens if found is not None), None),
    )


def _chosen_by(available: dict[str, Registered], environ: Mapping[str, str]) -> str | None:
    """The first provider (by name) that one of the set variables makes the default."""
    return next(
        (
            name
            for name, plugin in sorted(available.items())
            if any(environ.get(variable) for variable in plugin.chosen_by)
        ),
        None,
    )
