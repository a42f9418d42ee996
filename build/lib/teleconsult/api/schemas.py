"""Request and response bodies: validated on the way in, documented in the OpenAPI spec.

Field names are the original service's (camelCase in participants, snake_case
dates), so existing frontends keep working. Unknown fields are refused, so a
misspelt optional field is a 400 rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

NON_EMPTY = validate.Length(min=1)
DATE_EXAMPLE = "2022-02-22T15:30:00.000Z"


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class AwareDate(fields.AwareDateTime):
    """An ISO 8601 date-time that must carry its time-zone offset: no local-time guesses."""

    default_error_messages = {  # noqa: RUF012 - marshmallow's own convention
        "invalid": ("Not an ISO 8601 date-time; use for example " + DATE_EXAMPLE + "."),
        "invalid_awareness": (
            "The date-time has no time-zone offset; add Z or +hh:mm, for example "
            + DATE_EXAMPLE
            + "."
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"example": DATE_EXAMPLE, **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)


class ParticipantDataSchema(StrictSchema):
    userExternalId = fields.String(
        required=True,
        validate=NON_EMPTY,
        metadata={
            "description": "The participant's id in the caller's system; "
            "GET matches the caller against it."
        },
    )
    groups = fields.List(
        fields.String(validate=NON_EMPTY),
        validate=NON_EMPTY,
        metadata={
            "description": "Groups that give the participant a level (static identity only)."
        },
    )
    group = fields.String(
        validate=NON_EMPTY,
        metadata={"description": "Alias of `groups` with one group; not together with `groups`."},
    )
    fullName = fields.String(
        validate=NON_EMPTY,
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
    data = fields.List(
        fields.Nested(ParticipantDataSchema),
        load_default=list,
        metadata={"description": "The participants known so far."},
    )


class ParticipantsField(fields.Field):
    """Either an array of user ids (identity providers that resolve ids) or `{number, data}`."""

    def __init__(self, **kwargs: Any) -> None:
        schema_ref = {"$ref": "#/components/schemas/ParticipantsObject"}
        one_of = {
            "oneOf": [{"type": "array", "items": {"type": "string", "minLength": 1}}, schema_ref]
        }
        super().__init__(metadata={**one_of, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value: object, attr: str | None, data: object, **kwargs: Any) -> object:
        if isinstance(value, list):
            if not value or not all(isinstance(item, str) and item for item in value):
                raise ValidationError(
                    "An array of participants must hold non-empty user id strings."
                )
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
        validate=validate.Range(min=1),
        metadata={"description": "Alternative to end_date."},
    )


class UpdateTeleconsultationSchema(StrictSchema):
    participants = ParticipantsField()
    start_date = AwareDate()
    end_date = AwareDate()
    duration_in_seconds = fields.Integer(strict=True, validate=validate.Range(min=1))

    @validates_schema
    def not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(
                "Give at least one of participants, start_date, end_date, duration_in_seconds."
            )


class CreatedSchema(Schema):
    roomId = fields.String(required=True, metadata={"description": "The teleconsultation id."})


class CallParticipantSchema(Schema):
    bandyerUserId = fields.String(required=True)
    fullName = fields.String(required=True)


class JoinSchema(Schema):
    bandyerUserId = fields.String(
        required=True, metadata={"description": "The caller's provider user id."}
    )
    accessLinkURL = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The caller's join link once the room is final; null until then."},
    )
    participantsBandyerCall = fields.List(fields.Nested(CallParticipantSchema), required=True)


class ErrorSchema(Schema):
    statusCode = fields.Integer(required=True)
    error = fields.String(required=True)
    message = fields.String(required=True)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["OK", "KO"]))
    name = fields.String(required=True)
    version = fields.String(required=True)
