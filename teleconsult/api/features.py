"""The original's later endpoints: SDK credentials, a room's uploads, virtual backgrounds."""

from __future__ import annotations

import asyncio

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp_apigami import docs, response_schema

from teleconsult.api.answers import json_answer
from teleconsult.api.errors import read_timeout
from teleconsult.api.hardening import NO_STORE
from teleconsult.api.schemas import (
    BackgroundUploadedSchema,
    CompanySchema,
    CredentialsRequestSchema,
    CredentialsSchema,
    SettingsUpdateSchema,
    UploadsDeletedSchema,
)
from teleconsult.api.teleconsultations import (
    BODY,
    body,
    caller_of,
    errors,
    manager_of,
    operator_errors,
    operator_of,
)
from teleconsult.api.trace import audited
from teleconsult.core import audit
from teleconsult.core.features import MAX_BACKGROUND_BYTES, too_large
from teleconsult.errors import ClientClosed, InvalidRequest, MalformedBody
from teleconsult.providers.protocols import Upload
from teleconsult.services import SERVICES

BACKGROUND_FIELD = "virtual_background"


@docs(
    tags=["credentials"],
    operationId="createCredentials",
    summary="SDK credentials for the caller",
    description="Creates the caller's provider user if needed. The body is optional.",
    responses=errors(400, 401, 408, 413, 415, 501, 502, 503, 504),
)
@body(CredentialsRequestSchema, required=False)
@response_schema(CredentialsSchema, 201, description="The caller's SDK credentials.")
async def create_credentials(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    credentials = await request.app[SERVICES].features.credentials(
        caller, request[BODY].get("expiresIn")
    )
    await audited(request, audit.CREDENTIALS, None, caller, participant=caller.id)
    return json_answer(
        {
            "accessToken": credentials.access_token,
            "expiresAt": credentials.expires_at,
            "bandyerUserId": credentials.provider_user_id,
        },
        status=201,
        headers=NO_STORE,
    )


@docs(
    tags=["teleconsultations"],
    operationId="deleteUploads",
    summary="Delete the files uploaded in the room",
    description=(
        "204 and nothing done unless TELECONSULTATION_DELETE_UPLOADS is true. "
        "Files that could not be deleted stay: a retry finishes them."
    ),
    responses={
        204: {"description": "Deleting uploads is turned off."},
        **errors(400, 401, 403, 404, 501, 502, 503, 504),
    },
)
@response_schema(UploadsDeletedSchema, 200, description="How many files there were and went.")
async def delete_uploads(request: web.Request) -> web.Response:
    caller = await manager_of(request)
    if not request.app[SERVICES].settings.rooms.delete_uploads:
        return web.Response(status=204)
    room_id = request.match_info["roomId"]
    result = await request.app[SERVICES].features.delete_uploads(room_id, caller)
    await audited(request, audit.UPLOADS_DELETED, room_id, caller)
    return json_answer({"total": result.total, "deleted": result.deleted})


@docs(
    tags=["settings"],
    operationId="uploadBackground",
    summary="Add a company virtual background",
    description=f"Multipart field `{BACKGROUND_FIELD}`: an image of at most 10 MB, of a type "
    "the video provider accepts (Kaleyra: JPEG).",
    requestBody={
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [BACKGROUND_FIELD],
                    "properties": {BACKGROUND_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    },
    responses=operator_errors(400, 401, 403, 408, 413, 415, 501, 502, 503, 504),
)
@response_schema(BackgroundUploadedSchema, 200, description="The background the provider made.")
async def upload_background(request: web.Request) -> web.Response:
    await operator_of(request)
    request.app[SERVICES].features.backgrounds()  # a provider without them: 501 before any reading
    upload = await _read_background(request)
    background = await request.app[SERVICES].features.upload_background(upload)
    return json_answer({"virtual_background": background})


@docs(
    tags=["settings"],
    operationId="updateSettings",
    summary="Make a virtual background the company default",
    responses=operator_errors(400, 401, 403, 404, 408, 413, 415, 501, 502, 503, 504),
)
@body(SettingsUpdateSchema)
@response_schema(CompanySchema, 200, description="The company, as the provider describes it.")
async def update_settings(request: web.Request) -> web.Response:
    await operator_of(request)
    company = await request.app[SERVICES].features.set_default_background(
        request[BODY]["background_alias"]
    )
    return json_answer({"company": company})


async def _read_background(request: web.Request) -> Upload:
    """The image part of a multipart body, read up to the size limit and no further, within
    HTTP_READ_TIMEOUT_MS."""
    timeout = request.app[SERVICES].settings.http.read_timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout):
            return await _read_image_part(request)
    except TimeoutError:
        raise read_timeout(timeout) from None
    except ConnectionResetError:
        raise ClientClosed() from None


async def _read_image_part(request: web.Request) -> Upload:
    if not request.content_type.startswith("multipart/"):
        raise InvalidRequest(
            f"Send the image as multipart/form-data, field {BACKGROUND_FIELD}.",
            path=BACKGROUND_FIELD,
        )
    if (
        request.content_length is not None
        and request.content_length > MAX_BACKGROUND_BYTES + 64 * 1024
    ):
        raise too_large()
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == BACKGROUND_FIELD:
                content = bytearray()
                while chunk := await part.read_chunk(64 * 1024):
                    content.extend(chunk)
                    if len(content) > MAX_BACKGROUND_BYTES:
                        raise too_large()
                return Upload(
                    content=bytes(content),
                    filename=part.filename or "background.jpg",
                    content_type=part.headers.get("Content-Type", "").split(";")[0].strip(),
                )
            await part.release() if isinstance(part, BodyPartReader) else None
    except (ValueError, AssertionError, HttpProcessingError) as error:
        raise MalformedBody("The multipart body could not be read.") from error
    raise InvalidRequest(
        f"The multipart body has no {BACKGROUND_FIELD} field.", path=BACKGROUND_FIELD
    )


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    return [
        app.router.add_post("/credentials", create_credentials),
        app.router.add_delete("/teleconsultation/{roomId}/uploads", delete_uploads),
        app.router.add_post("/settings/background-image", upload_background),
        app.router.add_patch("/settings/update", update_settings),
    ]
