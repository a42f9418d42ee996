"""The original's later features, through the video provider's optional capabilities.

SDK credentials for a user, deleting the files uploaded in a room, and the
company's virtual backgrounds (versions 1.4 to 2.1 of the original). Each needs
a capability protocol (`SdkCredentials`, `Uploads`, `VirtualBackgrounds`); when
the configured provider lacks it, the endpoint answers 501 naming the provider
and the capability.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from teleconsult.core.domain import Level, Privileges
from teleconsult.core.service import TeleconsultationService, require_caller
from teleconsult.errors import (
    InvalidRequest,
    MissingCapability,
    ServiceError,
    TooLarge,
    UnsupportedMediaType,
)
from teleconsult.observability import redaction
from teleconsult.providers.protocols import (
    CAPABILITIES,
    Caller,
    Credentials,
    SdkCredentials,
    Upload,
    Uploads,
    VideoProvider,
    VirtualBackgrounds,
)

log = logging.getLogger(__name__)

DEFAULT_CREDENTIALS_SECONDS = 3600
MAX_BACKGROUND_BYTES = 10 * 1024 * 1024
"""The original's limit for a background image (10 MB)."""
IMAGE_NAMES = {"image/jpeg": "a JPEG image", "image/png": "a PNG image"}


@dataclass(frozen=True)
class UploadsDeleted:
    total: int
    deleted: int


def missing(video: VideoProvider, capability: type) -> MissingCapability:
    """The 501 for a provider that does not offer `capability`."""
    return MissingCapability(video.name, CAPABILITIES[capability])


class ProviderFeatures:
    def __init__(
        self, service: TeleconsultationService, video: VideoProvider, privileges: Privileges
    ) -> None:
        self.service = service
        self.video = video
        self.privileges = privileges

    async def credentials(self, caller: Caller, expires_in: int | None) -> Credentials:
        """SDK credentials for the caller, whose provider user is created if needed."""
        sdk = self.video
        if not isinstance(sdk, SdkCredentials):
            raise missing(sdk, SdkCredentials)
        caller_id = require_caller(caller)
        seconds = DEFAULT_CREDENTIALS_SECONDS if expires_in is None else expires_in
        shortest, longest = sdk.credentials_seconds
        if not shortest <= seconds <= longest:
            raise InvalidRequest(
                f"expiresIn must be between {shortest} and {longest} seconds for this video "
                f"provider; got {seconds}.",
                path="expiresIn",
            )
        level = self.privileges.level_of(caller.groups or ()) or Level.BASIC
        provider_user_id = await self.service.provider_user(caller_id, level, caller)
        credentials = await sdk.create_credentials(provider_user_id, seconds)
        redaction.sensitive([credentials.access_token])
        return credentials

    async def delete_uploads(self, teleconsultation_id: str, caller: Caller) -> UploadsDeleted:
        """Delete the room's files; those that fail stay, for a retry to finish."""
        uploads = self.video
        if not isinstance(uploads, Uploads):
            raise missing(uploads, Uploads)
        record = await self.service.load_for_change(teleconsultation_id, caller)
        if record.room is None:
            return UploadsDeleted(total=0, deleted=0)
        keys = await uploads.list_uploads(record.room.provider_room_id)
        results = await asyncio.gather(
            *(uploads.delete_upload(key) for key in keys), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for failure in failed:
            if not isinstance(failure, ServiceError):
                raise failure
            log.warning("could not delete an uploaded file: %s", failure.message)
        return UploadsDeleted(total=len(keys), deleted=len(keys) - len(failed))

    def backgrounds(self) -> VirtualBackgrounds:
        """The provider's virtual backgrounds, or 501: checked before an upload is read."""
        backgrounds = self.video
        if not isinstance(backgrounds, VirtualBackgrounds):
            raise missing(backgrounds, VirtualBackgrounds)
        return backgrounds

    async def upload_background(self, upload: Upload) -> dict[str, object]:
        backgrounds = self.backgrounds()
        if upload.content_type not in backgrounds.background_types:
            accepted = " or ".join(
                f"{IMAGE_NAMES.get(kind, 'an image')} ({kind})"
                for kind in sorted(backgrounds.background_types)
            )
            raise UnsupportedMediaType(
                f"virtual_background must be {accepted}; got {upload.content_type or 'none'}."
            )
        if len(upload.content) > MAX_BACKGROUND_BYTES:
            raise too_large()
        return await backgrounds.upload_background(upload)

    async def set_default_background(self, alias: str) -> dict[str, object]:
        return await self.backgrounds().set_default_background(alias)


def too_large() -> TooLarge:
    return TooLarge(
        f"virtual_background may be at most {MAX_BACKGROUND_BYTES // (1024 * 1024)} MB."
    )
