"""Schemas of the mid-term plan change (SPEC §11): its body, its quote, its answer.

The body names only the wanted terms; a field left out is not changed. Shape
only: the limits (seats 1..10,000, add-on quantities) are the domain's
constants, and the rules (known add-ons, no repeats, no change) the domain's.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from domain.catalog import BILLING_PERIODS
from domain.quote import MAX_SEATS, MIN_SEATS
from interface.schemas import (
    AddOnSchema,
    ContractAddOnSchema,
    ContractTermsSchema,
    PaymentReferenceSchema,
    ScheduledChangeSchema,
    StrictSchema,
)


class ChangeQuoteRequestSchema(StrictSchema):
    seats = fields.Integer(strict=True, validate=validate.Range(MIN_SEATS, MAX_SEATS))
    add_ons = fields.List(
        fields.Nested(AddOnSchema),
        validate=validate.Length(max=20),
        metadata={"description": "The whole wanted add-on list; [] removes every add-on."},
    )
    billing_period = fields.String(validate=validate.OneOf(BILLING_PERIODS))


class ChangeRequestSchema(ChangeQuoteRequestSchema):
    expected_total = fields.Integer(required=True, strict=True, validate=validate.Range(0, 10**12))


class PlanTermsSchema(Schema):
    billing_period = fields.String(required=True)
    seats = fields.Integer(required=True)
    add_ons = fields.List(fields.Nested(ContractAddOnSchema), required=True)


class LineChangeSchema(Schema):
    kind = fields.String(
        required=True, metadata={"description": "bundle, add_on or billing_period"}
    )
    code = fields.String(required=True)
    # marshmallow names: the JSON keys are "from" and "to"
    from_ = fields.Raw(required=True, data_key="from")
    to = fields.Raw(required=True)
    takes_effect = fields.String(required=True, validate=validate.OneOf(["now", "at_renewal"]))


class ChangeLineSchema(Schema):
    kind = fields.String(required=True)
    code = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True)
    months = fields.Integer(required=True, allow_none=True)
    days = fields.Integer(required=True, allow_none=True)
    delta_per_period = fields.Integer(required=True, allow_none=True)
    period_days = fields.Integer(required=True, allow_none=True)
    amount = fields.Integer(required=True)


class UnusedPeriodCreditSchema(Schema):
    billing_period = fields.String(required=True)
    period_amount = fields.Integer(required=True)
    remaining_days = fields.Integer(required=True)
    total_days = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class ChangeQuoteSchema(Schema):
    currency = fields.String(required=True)
    at = fields.String(required=True)
    terms_before = fields.Nested(PlanTermsSchema, required=True)
    terms_after = fields.Nested(PlanTermsSchema, required=True)
    scheduled_change = fields.Nested(ScheduledChangeSchema, required=True, allow_none=True)
    scheduled_change_before = fields.Nested(ScheduledChangeSchema, required=True, allow_none=True)
    changes = fields.List(fields.Nested(LineChangeSchema), required=True)
    changes_now = fields.Boolean(required=True)
    new_period = fields.Boolean(required=True)
    period_start = fields.String(required=True)
    period_end = fields.String(required=True)
    lines = fields.List(fields.Nested(ChangeLineSchema), required=True)
    subtotal = fields.Integer(required=True)
    unused_period_credit = fields.Nested(UnusedPeriodCreditSchema, required=True, allow_none=True)
    period_credit_applied = fields.Integer(required=True)
    credited_to_balance = fields.Integer(required=True)
    credit_balance_before = fields.Integer(required=True)
    credit_balance_applied = fields.Integer(required=True)
    credit_balance_after = fields.Integer(required=True)
    credit = fields.Integer(required=True)
    tax = fields.Integer(required=True)
    total = fields.Integer(required=True)


class ChangeAnswerSchema(ChangeQuoteSchema):
    organization_id = fields.String(required=True)
    change_id = fields.String(required=True)
    status = fields.String(
        required=True,
        validate=validate.OneOf(["changed", "scheduled"]),
        metadata={
            "description": "changed: something took effect now (charged, invoiced); "
            "scheduled: everything waits for the renewal"
        },
    )
    payment = fields.Nested(PaymentReferenceSchema, required=True, allow_none=True)
    invoice_number = fields.String(required=True, allow_none=True)
    contract = fields.Nested(ContractTermsSchema, required=True, allow_none=True)
    version = fields.Integer(required=True)
    position = fields.Integer(required=True, allow_none=True)
