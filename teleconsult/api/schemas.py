"""Request and response bodies: validated on the way in, documented in the OpenAPI spec.

Field names are the original service's (camelCase in participants, snake_case
dates), so existing frontends keep working. Unknown fields are refused, so a
misspelt optional field is a 400 rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from teleconsult.api.fields import (
    DATE_EXAMPLE,
    GROUP,
    MAX_DURATION_SECONDS,
    MAX_GROUPS,
    MAX_PARTICIPANTS,
    NAME,
    AwareDate,
    BoundedList,
    StrictSchema,
    described_string,
    external_id_problem,
    next_cursor,
    valid_external_id,
)
from teleconsult.core.audit import ACTIONS
from teleconsult.core.domain import Phase
from teleconsult.core.listing import DEFAULT_LIMIT, MAX_LIMIT
from teleconsult.core.waiting import MAX_WAIT_SECONDS
from teleconsult.errors import ERROR_CODES


class ParticipantDataSchema(StrictSchema):
    userExternalId = fields.String(
        required=True,
        validate=[NAME, valid_external_id],
        metadata={
            "description": "The participant's id in the caller's system; "
            "GET matches the caller against it."
        },
    )
    groups = BoundedList(
        fields.String(validate=GROUP),
        max_items=MAX_GROUPS,
        min_items=1,
        metadata={
            "description": "Groups that give the participant a level (static identity only)."
        },
    )
    group = fields.String(
        validate=GROUP,
        metadata={"description": "Alias of `groups` with one group; not together with `groups`."},
    )
    fullName = fields.String(
        validate=NAME,
        metadata={"description": "The name the call shows (static identity only)."},
    )
    language = fields.String(
        validate=validate.Length(min=2, max=16),
        metadata={"description": "Language of the participant's call page, e.g. it, en."},
    )

    @validates_schema
    def one_way_to_give_groups(self, data: dict[str, Any], **_: Any) -> None:
        if "group" in data and "groups" in data:
            raise ValidationError("Give either groups or group, not both.", "group")


class ParticipantsObjectSchema(StrictSchema):
    number = fields.Integer(
        required=True,
        strict=True,
        metadata={"description": "How many participants the call will have."},
    )
    data = BoundedList(
        fields.Nested(ParticipantDataSchema),
        max_items=MAX_PARTICIPANTS,
        metadata={
            "description": "The participants known so far. Omitted: none when creating; "
            "the ones already known when updating."
        },
    )


class ParticipantsField(fields.Field):
    """Either an array of user ids (identity providers that resolve ids) or `{number, data}`."""

    def __init__(self, **kwargs: Any) -> None:
        schema_ref = {"$ref": "#/components/schemas/ParticipantsObject"}
        ids = {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PARTICIPANTS,
            "items": {"type": "string", "minLength": 1, "maxLength": 256},
        }
        one_of = {"oneOf": [ids, schema_ref]}
        super().__init__(metadata={**one_of, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: Any) -> object:
        if isinstance(value, list):
            if len(value) > MAX_PARTICIPANTS:
                raise ValidationError(f"Longer than maximum length {MAX_PARTICIPANTS}.")
            if not value or not all(
                isinstance(item, str) and 0 < len(item) <= 256 for item in value
            ):
                raise ValidationError(
                    "An array of participants must hold user id strings of 1 to 256 characters."
                )
            for index, item in enumerate(value):
                problem = external_id_problem(item)
                if problem is not None:
                    raise ValidationError({index: [problem]})
            return value
        if isinstance(value, dict):
            return ParticipantsObjectSchema().load(value)
        raise ValidationError("Must be an object {number, data} or an array of user ids.")


class CreateTeleconsultationSchema(StrictSchema):
    participants = ParticipantsField(required=True)
    start_date = AwareDate(required=True)
    end_date = AwareDate(metadata={"description": "Required unless duration_in_seconds is given."})
    duration_in_seconds = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_DURATION_SECONDS),
        metadata={"description": "Alternative to end_date."},
    )


class UpdateTeleconsultationSchema(StrictSchema):
    participants = ParticipantsField()
    start_date = AwareDate()
    end_date = AwareDate()
    duration_in_seconds = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=MAX_DURATION_SECONDS)
    )

    @validates_schema
    def not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(
                "Give at least one of participants, start_date, end_date, duration_in_seconds."
            )


class CreatedSchema(Schema):
    roomId = described_string("The teleconsultation id.")


class CallParticipantSchema(Schema):
    bandyerUserId = fields.String(required=True)
    fullName = fields.String(required=True)


class JoinSchema(Schema):
    bandyerUserId = described_string("The caller's provider user id.")
    accessLinkURL = described_string(
        "The caller's join link once the room is final; null until then.", nullable=True
    )
    participantsBandyerCall = fields.List(fields.Nested(CallParticipantSchema), required=True)
    state = fields.String(
        validate=validate.OneOf([Phase.ENDED.value]),
        metadata={
            "description": "`ended` once the provider reported that the call ended for "
            "everyone: `accessLinkURL` stays null from then on (absent before)."
        },
    )
    details = fields.Dict(
        metadata={
            "description": "The room as the provider describes it (camelCase), once it exists; "
            "`attendance` (who joined the call when: `callStartedAt`, `callEndedAt`, "
            "`presences` [{bandyerUserId, joinedAt, leftAt}], `noShow`), once the provider "
            "reported any."
        }
    )


class ProblemSchema(Schema):
    path = described_string("Where, as the caller wrote it: `participants.data[0].groups`.")
    message = described_string("What is wrong there.")


class ErrorSchema(Schema):
    statusCode = fields.Integer(required=True)
    error = described_string("The HTTP reason, or the original's string.")
    message = described_string("What to change.")
    code = fields.String(
        required=True,
        validate=validate.OneOf(list(ERROR_CODES)),
        metadata={"description": "Stable and machine-readable: switch on it (docs/api.md)."},
    )
    details = fields.List(
        fields.Nested(ProblemSchema),
        metadata={"description": "A `validation` error's problems (at most 20)."},
    )


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["OK", "KO"]))
    name = fields.String(required=True)
    version = fields.String(required=True)
    placeholders = fields.List(
        fields.String(),
        metadata={
            "description": "Variables still set to a placeholder such as CHANGE_ME (KO until "
            "they are given real values)."
        },
    )
    unmigrated_records = fields.Integer(
        data_key="unmigratedRecords",
        metadata={
            "description": "`/-/check-up` only, when above 0: how many stored teleconsultations "
            "are still the original service's (`teleconsult migrate` converts them)."
        },
    )


WAIT_DESCRIPTION = (
    f"Hold the answer up to this many seconds (0 to {MAX_WAIT_SECONDS}) while the caller's "
    "link is not available yet; it answers as soon as it is (or at the end), exactly as "
    "without this parameter."
)


class JoinQuerySchema(Schema):
    """Query parameters of GET; others (a cache-buster, say) are ignored, not refused."""

    class Meta:
        unknown = EXCLUDE

    language = fields.String(
        validate=validate.Length(min=2, max=16),
        metadata={"description": "Language of the caller's link (e.g. it, en)."},
    )
    useBackground = fields.Boolean(
        metadata={"description": "Virtual background in the caller's link; unset: by group."}
    )
    waitSeconds = fields.Integer(
        validate=validate.Range(min=0, max=MAX_WAIT_SECONDS),
        metadata={"description": WAIT_DESCRIPTION},
    )


class UploadsDeletedSchema(Schema):
    total = fields.Integer(required=True, metadata={"description": "Files found in the room."})
    deleted = fields.Integer(required=True, metadata={"description": "Files deleted now."})


class CredentialsRequestSchema(StrictSchema):
    expiresIn = fields.Integer(
        strict=True,
        metadata={
            "description": "Seconds the token lasts; default 3600, within the provider's bounds."
        },
    )


class CredentialsSchema(Schema):
    accessToken = fields.String(required=True)
    expiresAt = fields.DateTime(required=True, metadata={"description": "When the token expires."})
    bandyerUserId = fields.String(required=True)


class BackgroundSchema(Schema):
    background_alias = fields.String(required=True)
    url = fields.String(required=True)
    creation_date = fields.DateTime(required=True)


class BackgroundUploadedSchema(Schema):
    virtual_background = fields.Nested(BackgroundSchema, required=True)


class SettingsUpdateSchema(StrictSchema):
    background_alias = fields.String(required=True, validate=validate.Length(min=1, max=128))


class CompanySchema(Schema):
    company = fields.Dict(
        required=True, metadata={"description": "The company, as the provider describes it."}
    )


class FailedWebhookSchema(Schema):
    id = described_string("The delivery: `<endpoint>.<event id>`.")
    eventId = described_string("Its `webhook-id`.")
    endpoint = fields.String(required=True)
    type = fields.String(required=True)
    teleconsultationId = fields.String(required=True)
    attempts = fields.Integer(required=True)
    lastError = described_string("What the last attempt got.", nullable=True)
    occurredAt = fields.DateTime(required=True)
    failedAt = fields.DateTime(required=True, allow_none=True)
    payload = fields.Dict(
        required=True, metadata={"description": "The body it carries (ids, states, times)."}
    )


class FailedWebhooksSchema(Schema):
    failed = fields.List(fields.Nested(FailedWebhookSchema), required=True)


class FailedQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(
        strict=False,
        validate=validate.Range(min=1, max=500),
        metadata={"description": "At most this many, the most recently failed first (100)."},
    )


class PageQuerySchema(StrictSchema):
    """A keyset page's query: its size and where it starts; an unknown parameter is a 400,
    not silently ignored."""

    limit = fields.Integer(
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"Items per page, {DEFAULT_LIMIT} by default."},
    )
    cursor = fields.String(
        validate=validate.Length(min=1, max=256),
        metadata={"description": "`nextCursor` of the previous page."},
    )


class ListQuerySchema(PageQuerySchema):
    """The filters of GET /teleconsultations."""

    participant = fields.String(
        validate=NAME,
        metadata={
            "description": "A participant's external id; managers only, for anyone but the "
            "caller (default: the caller; for a manager, every teleconsultation)."
        },
    )
    from_ = AwareDate(
        data_key="from",
        metadata={"description": "Teleconsultations starting at or after this date."},
    )
    to = AwareDate(metadata={"description": "Teleconsultations starting before this date."})
    state = fields.String(
        validate=validate.OneOf([phase.value for phase in Phase]),
        metadata={"description": "Only teleconsultations in this state."},
    )


class KnownParticipantSchema(Schema):
    userExternalId = fields.String(required=True)
    fullName = fields.String(required=True)


class ListedTeleconsultationSchema(Schema):
    id = fields.String(required=True)
    start_date = fields.DateTime(required=True, metadata={"example": DATE_EXAMPLE})
    end_date = fields.DateTime(required=True, metadata={"example": DATE_EXAMPLE})
    createdAt = fields.DateTime(required=True, metadata={"example": DATE_EXAMPLE})
    updatedAt = fields.DateTime(required=True, metadata={"example": DATE_EXAMPLE})
    state = fields.String(required=True, validate=validate.OneOf([phase.value for phase in Phase]))
    participantsNumber = fields.Integer(
        required=True, metadata={"description": "How many participants it is for."}
    )
    participants = fields.List(
        fields.Nested(KnownParticipantSchema),
        required=True,
        metadata={"description": "The participants known so far (never their links)."},
    )


class TeleconsultationListSchema(Schema):
    items = fields.List(fields.Nested(ListedTeleconsultationSchema), required=True)
    nextCursor = next_cursor()


class AuditEntrySchema(Schema):
    id = fields.String(required=True)
    at = fields.DateTime(required=True, metadata={"example": DATE_EXAMPLE})
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    actor = described_string("The caller's user id (`public` when unknown).")
    participant = described_string("Whose link, or who was added: a user id.", nullable=True)
    fields_ = fields.List(
        fields.String(),
        data_key="fields",
        required=True,
        metadata={"description": "The fields a change gave (names, never values)."},
    )
    requestId = fields.String(required=True)
    clientAddress = described_string(
        "The peer, or X-Forwarded-For from a TRUSTED_PROXIES peer.", nullable=True
    )
    userAgent = fields.String(required=True, allow_none=True)


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema), required=True)
    nextCursor = next_cursor()


class ProviderEventsReceivedSchema(Schema):
    received = fields.Integer(
        required=True, metadata={"description": "Events the request carried that the core uses."}
    )
    recorded = fields.Integer(
        required=True,
        metadata={"description": "Of those, how many changed a teleconsultation (and went out)."},
    )
