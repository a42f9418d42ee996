"""The plugin contract: every hook a teleconsult plugin may implement.

A plugin is a module (or object) with functions decorated by `hookimpl` and
named like the specs below; it is found through the `teleconsult` entry point
group. docs/plugins.md documents each hook, and a test fails when a hook here is
missing from it or is not exercised by a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from teleconsult.providers.protocols import IdentityProviderPlugin, VideoProviderPlugin

PROJECT = "teleconsult"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_video_providers() -> list[VideoProviderPlugin[Any]]:  # type: ignore[empty-body]
    """Return the video providers this plugin offers, each with a unique name.

    The `VIDEO_PROVIDER` setting picks one by name; only the chosen one is
    created, so a provider may require its own environment variables.
    """


@hookspec
def register_identity_providers() -> list[IdentityProviderPlugin[Any]]:  # type: ignore[empty-body]
    """Return the identity providers this plugin offers, each with a unique name.

    The `IDENTITY_PROVIDER` setting picks one by name.
    """


@hookspec
def register_routes() -> list[web.AbstractRouteDef]:  # type: ignore[empty-body]
    """Return extra aiohttp routes to serve next to the API.

    Handlers find the running video provider in `request.app` under
    `teleconsult.plugin.VIDEO_PROVIDER`, so a provider can serve pages of its own (the fake video
    provider serves its join page this way).
    """
