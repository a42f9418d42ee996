"""Revoke one participant's link, remove them from the call and keep them out, let them back
in (issue 30):

- `DELETE /teleconsultation/{roomId}/participants/{userExternalId}/link`: revoke;
- `PUT /teleconsultation/{roomId}/participants/{userExternalId}/block`: remove and keep out;
- `DELETE /teleconsultation/{roomId}/participants/{userExternalId}/block`: let back in.

Each answers 204, is an audit entry and a webhook event; never with a link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs
from marshmallow import Schema, fields, validate

from teleconsult.api.schemas import ErrorSchema
from teleconsult.api.teleconsultations import caller_of, errors
from teleconsult.api.trace import audited
from teleconsult.core import audit, revocation
from teleconsult.core.link_revocations import LinkRevocations
from teleconsult.core.revocation import Asker
from teleconsult.errors import InvalidRequest, NotFound
from teleconsult.providers.protocols import Caller
from teleconsult.services import SERVICES

PATH = "/teleconsultation/{roomId}/participants/{userExternalId}"
EVENT_SCHEMA_REF = "#/components/schemas/ParticipantEvent"
WHO = (
    "Allowed to the teleconsultation's creator, its plus participants, members of "
    "ADMIN_GROUPS and MANAGER_GROUPS"
)
ANSWERS: dict[int, dict[str, Any]] = {
    **errors(400, 401, 404, 502, 503, 504),
    403: {
        "schema": ErrorSchema,
        "description": "`forbidden`: the caller may not do this for that participant.",
    },
    409: {
        "schema": ErrorSchema,
        "description": "`no_room`: the teleconsultation has no room yet (nothing to revoke); "
        "`contention`: it kept changing, retry.",
    },
    501: {
        "schema": ErrorSchema,
        "description": "`not_supported`: the video provider cannot revoke links (`jitsi`, "
        "`bandyer`); `message` names it and says why. Nothing was changed.",
    },
}


class EventParticipantSchema(Schema):
    userExternalId = fields.String(required=True)
    providerUserId = fields.String(required=True)
    level = fields.String(required=True, validate=validate.OneOf(["basic", "plus"]))


class ParticipantEventDataSchema(Schema):
    teleconsultationId = fields.String(required=True)
    version = fields.Integer(required=True)
    state = fields.String(required=True)
    startDate = fields.DateTime(required=True)
    endDate = fields.DateTime(required=True)
    participantsNumber = fields.Integer(required=True)
    participants = fields.List(fields.Nested(EventParticipantSchema), required=True)
    providerRoomId = fields.String(required=True, allow_none=True)
    updatedAt = fields.DateTime(required=True)
    participant = fields.Nested(
        EventParticipantSchema,
        required=True,
        metadata={"description": "Whose link was revoked, who was removed or let back in."},
    )
    by = fields.String(
        required=True,
        metadata={"description": "Who did it (their user id; `public` when anonymous)."},
    )


class ParticipantEventSchema(Schema):
    """The webhook body of `participant.link_revoked`, `participant.removed` and
    `participant.unblocked` (Standard Webhooks): ids and times, never a link or a name."""

    type = fields.String(required=True, validate=validate.OneOf(list(revocation.KINDS)))
    timestamp = fields.DateTime(required=True)
    data = fields.Nested(ParticipantEventDataSchema, required=True)


async def _act(
    request: web.Request,
    act: Callable[[LinkRevocations], Callable[..., Awaitable[None]]],
    action: str,
) -> web.Response:
    room_id, target = request.match_info["roomId"], request.match_info["userExternalId"]
    caller = await caller_of(request)
    manager = request.app[SERVICES].authenticator.is_manager(caller)
    asker = Asker(id=caller.id, groups=caller.groups or frozenset(), manager=manager)

    async def recorded() -> None:  # once written, before the provider is told
        await audited(request, action, room_id, caller, participant=target)

    await act(LinkRevocations(request.app[SERVICES].service))(room_id, target, asker, recorded)
    return web.Response(status=204)


@dataclass(frozen=True)
class _Action:
    """One of the three routes: how it is called and documented, what it does."""

    method: str
    path: str
    operation_id: str
    summary: str
    description: str
    answer: str
    act: Callable[[LinkRevocations], Callable[..., Awaitable[None]]]
    audit_action: str

    def handler(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await _act(request, self.act, self.audit_action)

        return docs(
            tags=["teleconsultations"],
            operationId=self.operation_id,
            summary=self.summary,
            description=self.description,
            responses={204: {"description": self.answer}, **ANSWERS},
        )(handle)


ACTIONS = (
    _Action(
        "DELETE",
        "/link",
        "revokeParticipantLink",
        "Revoke a participant's link",
        "The links handed out to this participant stop opening the call, on every replica: "
        "a page or connection using one is told its link was revoked and leaves the call. "
        "Their next GET hands out a new, different link. Allowed inside the immutable window "
        f"(it changes no room). {WHO}, and to the participant for their own link. Webhook "
        "`participant.link_revoked`; audit entry `link_revoked`. What each video provider "
        "can revoke: docs/operations.md.",
        "Revoked.",
        lambda revocations: revocations.revoke,
        audit.LINK_REVOKED,
    ),
    _Action(
        "PUT",
        "/block",
        "removeParticipant",
        "Remove a participant from the call and keep them out",
        "Their link is revoked (as DELETE .../link) and they are blocked: their GET answers "
        "403 `participant_blocked`, and their page says they were removed. "
        f"{WHO}. Webhook `participant.removed`; audit entry `participant_removed`.",
        "Removed and blocked.",
        lambda revocations: revocations.remove,
        audit.REMOVED,
    ),
    _Action(
        "DELETE",
        "/block",
        "unblockParticipant",
        "Let a removed participant back in",
        "Their next GET hands out a link again (a new one). Unblocking a participant who is "
        f"not blocked changes nothing. {WHO}. Webhook `participant.unblocked`; audit entry "
        "`participant_unblocked`.",
        "Unblocked (or was not blocked).",
        lambda revocations: revocations.unblock,
        audit.UNBLOCKED,
    ),
)


WEBHOOK_SUMMARIES = {
    revocation.LINK_REVOKED: "A participant's link was revoked",
    revocation.REMOVED: "A participant was removed from the call and is kept out",
    revocation.UNBLOCKED: "A removed participant was let back in",
}


def document_webhooks(document: dict[str, Any]) -> None:
    """The events these routes send, as Redoc's `x-webhooks` (OpenAPI 3.0 has no `webhooks`):
    each a signed POST to the configured endpoints (docs/webhooks.md)."""
    body = {"content": {"application/json": {"schema": {"$ref": EVENT_SCHEMA_REF}}}}
    document.setdefault("x-webhooks", {}).update(
        {
            kind: {
                "post": {
                    "summary": summary,
                    "description": "Signed with Standard Webhooks (docs/webhooks.md); ids, "
                    "states and times only, never a link or a name.",
                    "operationId": kind.replace("participant.", "webhook_"),
                    "requestBody": body,
                    "security": [],  # the receiver checks the signature, not a caller
                    "responses": {"2XX": {"description": "Received."}},
                }
            }
            for kind, summary in WEBHOOK_SUMMARIES.items()
        }
    )


async def remove_from_page(
    request: web.Request, teleconsultation_id: str, by: str, whom: str
) -> None:
    """A plus participant's call page removes another participant (provider user ids): as
    `PUT .../block` by that participant, recorded with the page's request."""
    service = request.app[SERVICES].service
    record = await service.load(teleconsultation_id)
    users = {p.provider_user_id: p for p in record.participants}
    asking, removed = users.get(by), users.get(whom)
    if asking is None or removed is None:
        raise NotFound("That participant is no longer in this teleconsultation.")
    if asking is removed:
        raise InvalidRequest("A page cannot remove its own participant; Leave instead.")
    groups = frozenset(asking.groups)
    caller = Caller(id=asking.external_id, groups=groups)

    async def recorded() -> None:
        await audited(
            request, audit.REMOVED, teleconsultation_id, caller, participant=removed.external_id
        )

    asker = Asker(id=asking.external_id, groups=groups, manager=False)
    await LinkRevocations(service).remove(teleconsultation_id, removed.external_id, asker, recorded)


def setup_routes(app: web.Application) -> list[web.AbstractRoute]:
    return [app.router.add_route(a.method, PATH + a.path, a.handler()) for a in ACTIONS]
