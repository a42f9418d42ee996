"""The original's later features, passed through to the video provider.

SDK credentials for a user, deleting the files uploaded in a room, and the
company's virtual backgrounds (versions 1.4 to 2.1 of the original). Each goes
through the `VideoProvider` protocol, so every video plugin offers them alike.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from teleconsult.core.domain import Level, Privileges
from teleconsult.core.service import TeleconsultationService, require_caller
from teleconsult.errors import InvalidRequest, ServiceError
from teleconsult.observability import logs
from teleconsult.providers.protocols import Caller, Credentials, Upload, VideoProvider

log = logging.getLogger(__name__)

DEFAULT_CREDENTIALS_SECONDS = 3600
MAX_BACKGROUND_BYTES = 10 * 1024 * 1024
BACKGROUND_TYPES = ("image/jpeg",)
"""Kaleyra takes JPEG backgrounds only; refused here, before anything is sent on."""


@dataclass(frozen=True)
class UploadsDeleted:
    total: int
    deleted: int


class ProviderFeatures:
    def __init__(
        self, service: TeleconsultationService, video: VideoProvider, privileges: Privileges
    ) -> None:
        self.service = service
        self.video = video
        self.privileges = privileges

    async def credentials(self, caller: Caller, expires_in: int | None) -> Credentials:
        """SDK credentials for the caller, whose provider user is created if needed."""
        caller_id = require_caller(caller)
        seconds = DEFAULT_CREDENTIALS_SECONDS if expires_in is None else expires_in
        limits = self.video.limits
        if not limits.min_credentials_seconds <= seconds <= limits.max_credentials_seconds:
            raise InvalidRequest(
                f"expiresIn must be between {limits.min_credentials_seconds} and "
                f"{limits.max_credentials_seconds} seconds for this video provider; got {seconds}."
            )
        level = self.privileges.level_of(caller.groups or ()) or Level.BASIC
        provider_user_id = await self.service.provider_user(caller_id, level, caller)
        credentials = await self.video.create_credentials(provider_user_id, seconds)
        logs.sensitive([credentials.access_token])
        return credentials

    async def delete_uploads(self, teleconsultation_id: str, caller: Caller) -> UploadsDeleted:
        """Delete the room's files; those that fail stay, for a retry to finish."""
        record = await self.service.load_for_change(teleconsultation_id, caller)
        if record.room is None:
            return UploadsDeleted(total=0, deleted=0)
        keys = await self.video.list_uploads(record.room.provider_room_id)
        results = await asyncio.gather(
            *(self.video.delete_upload(key) for key in keys), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for failure in failed:
            if not isinstance(failure, ServiceError):
                raise failure
            log.warning("could not delete an uploaded file: %s", failure.message)
        return UploadsDeleted(total=len(keys), deleted=len(keys) - len(failed))

    async def upload_background(self, upload: Upload) -> dict[str, object]:
        if upload.content_type not in BACKGROUND_TYPES:
            raise UnsupportedImage(upload.content_type)
        if len(upload.content) > MAX_BACKGROUND_BYTES:
            raise TooLarge()
        return await self.video.upload_background(upload)

    async def set_default_background(self, alias: str) -> dict[str, object]:
        return await self.video.set_default_background(alias)


class UnsupportedImage(ServiceError):
    status = 415

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"virtual_background must be a JPEG image (image/jpeg); got {content_type or 'none'}."
        )


class TooLarge(ServiceError):
    status = 413

    def __init__(self) -> None:
        super().__init__(
            f"virtual_background may be at most {MAX_BACKGROUND_BYTES // (1024 * 1024)} MB."
        )
