"""The service's own choices: which providers, which configuration file, how much it logs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from teleconsult.configuration.declarations import DeclaredSettings, setting

LogLevel = Literal["trace", "debug", "info", "warn", "error", "silent"]


class ServiceSettings(DeclaredSettings):
    """When VIDEO_PROVIDER or IDENTITY_PROVIDER is unset, an installed plugin may be the
    default the environment picks (`providers.manager.chosen_by_environment`)."""

    log_level: LogLevel = setting(
        "LOG_LEVEL",
        "info",
        "`trace`, `debug`, `info`, `warn`, `error` or `silent`; logs are JSON lines on stdout",
    )
    video_provider: str = setting(
        "VIDEO_PROVIDER",
        "webrtc",
        "name of the video provider plugin to use: `webrtc` (calls served by teleconsult itself), "
        "`bandyer` (Kaleyra Video), `livekit`, `jitsi` or `fake` (in memory, for tests; see "
        '"Video providers"); when unset and '
        "`BANDYER_API_SECRET_KEY` (or `BANDYER_API_SECRET_KEY_FILE`) is set, `bandyer`",
    )
    identity_provider: str = setting(
        "IDENTITY_PROVIDER",
        "static",
        "name of the identity provider plugin to use: `static` or `auth0`; when unset and "
        "`AUTH_SERVICE` or `AUTH0_DOMAIN` is set, `auth0`",
    )
    config_path: Path | None = setting(
        "TELECONSULTATION_SERVICE_CONFIG_PATH",
        None,
        "JSON service configuration file; unset = the built-in default (docs/settings.md, "
        '"Service configuration file")',
    )
