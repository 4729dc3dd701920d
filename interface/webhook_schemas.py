"""Schemas of the integration-event feed and the webhook endpoints API (SPEC §12)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from domain.integration_events import EVENT_TYPES
from interface.schemas import MAX_TEXT, StrictSchema, _text

MAX_EVENT_TYPES = 50
_EVENT_TYPE = fields.String(validate=validate.OneOf(["*", *EVENT_TYPES]))


class FeedQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(0, 2**62))
    types = fields.String(
        load_default="",
        validate=validate.Length(max=2000),
        metadata={"description": "Comma-separated integration event types (all if empty)"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class IntegrationEventSchema(Schema):
    id = fields.String(required=True)
    type = fields.String(required=True)
    created_at = fields.String(required=True)
    organization_id = fields.String(required=True)
    position = fields.Integer(required=True)
    api_version = fields.String(required=True)
    data = fields.Dict(required=True)


class FeedPageSchema(Schema):
    events = fields.List(fields.Nested(IntegrationEventSchema), required=True)
    next = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as `after` for the next page; null on the last"},
    )


class EndpointCreateSchema(StrictSchema):
    url = _text(max_length=2048, required=True)
    events = fields.List(
        _EVENT_TYPE, required=True, validate=validate.Length(min=1, max=MAX_EVENT_TYPES)
    )
    description = _text(max_length=MAX_TEXT, load_default="")


class EndpointPatchSchema(StrictSchema):
    url = _text(max_length=2048)
    events = fields.List(_EVENT_TYPE, validate=validate.Length(min=1, max=MAX_EVENT_TYPES))
    description = _text(max_length=MAX_TEXT)
    disabled = fields.Boolean()


class ReplaySchema(StrictSchema):
    after_position = fields.Integer(required=True, strict=True, validate=validate.Range(0, 2**62))


class DeliveriesQuerySchema(StrictSchema):
    status = fields.String(
        load_default=None, validate=validate.OneOf(["pending", "delivered", "cancelled"])
    )
    organization_id = fields.UUID(
        load_default=None,
        metadata={"description": "Only the deliveries of this organization's events"},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class EndpointSchema(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    description = fields.String(required=True)
    disabled = fields.Boolean(required=True)
    disabled_reason = fields.String(required=True, allow_none=True)
    failing_since = fields.String(required=True, allow_none=True)
    previous_secret_expires_at = fields.String(required=True, allow_none=True)
    start_position = fields.Integer(required=True)
    created_at = fields.String(required=True)


class EndpointWithSecretSchema(EndpointSchema):
    secret = fields.String(required=True, metadata={"description": "Shown only in this answer"})


class EndpointListSchema(Schema):
    endpoints = fields.List(fields.Nested(EndpointSchema), required=True)


class DeliverySchema(Schema):
    id = fields.String(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    organization_id = fields.String(required=True)
    position = fields.Integer(required=True)
    replay = fields.Boolean(required=True)
    status = fields.String(required=True)
    attempts = fields.Integer(required=True)
    next_attempt_at = fields.String(required=True, allow_none=True)
    last_response_code = fields.Integer(required=True, allow_none=True)
    last_latency_ms = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    last_attempt_at = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True)
    delivered_at = fields.String(required=True, allow_none=True)


class DeliveryPageSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


class ReplayAnswerSchema(Schema):
    replay_id = fields.String(required=True)
    deliveries = fields.Integer(required=True)
    after_position = fields.Integer(required=True)
    next = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "Set when the replay stopped early: replay again after it"},
    )
