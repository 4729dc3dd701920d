"""Marshmallow schemas of the invoices (SPEC §11): the list's query, a page, an invoice.

An invoice is served as it was recorded in its charging event
(``domain.invoice.Invoice.to_dict()``, docs/domain.md "Invoices").
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from application.invoices.projection import MAX_INVOICE_PAGE
from domain.invoice import CHARGED, CREDIT_SOURCES, INVOICE_NUMBER, NO_CHARGE
from interface.schemas import StrictSchema


class InvoicesQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, MAX_INVOICE_PAGE))
    #: The last number of the previous page (its ``next``).
    after = fields.String(
        load_default=None,
        validate=validate.Regexp(INVOICE_NUMBER, error="Must be an invoice number."),
        metadata={"pattern": INVOICE_NUMBER.pattern},
    )
    min_position = fields.Integer(load_default=None, validate=validate.Range(0, 2**62))


class InvoiceQuerySchema(StrictSchema):
    min_position = fields.Integer(load_default=None, validate=validate.Range(0, 2**62))


class InvoicePaymentSchema(Schema):
    #: ``charged`` (a card: brand, last4) or ``no_charge`` (a total of 0).
    status = fields.String(required=True, validate=validate.OneOf([CHARGED, NO_CHARGE]))
    brand = fields.String(allow_none=True)
    last4 = fields.String(allow_none=True)


class InvoiceIssuerSchema(Schema):
    name = fields.String(required=True)
    name_en = fields.String(required=True)
    registration_number = fields.String(required=True)
    address = fields.String(required=True)
    email = fields.String(required=True)


class InvoiceLineSchema(Schema):
    description = fields.String(required=True)
    description_ja = fields.String(required=True)
    code = fields.String(required=True, allow_none=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True)
    months = fields.Integer(required=True, allow_none=True)
    days = fields.Integer(required=True, allow_none=True)
    amount = fields.Integer(required=True)
    tax_rate = fields.Integer(required=True)


class InvoiceCreditSchema(Schema):
    source = fields.String(required=True, validate=validate.OneOf(CREDIT_SOURCES))
    service = fields.String(required=True, allow_none=True)
    description = fields.String(required=True)
    description_ja = fields.String(required=True)
    amount = fields.Integer(required=True)


class TaxSummarySchema(Schema):
    rate = fields.Integer(required=True)
    taxable = fields.Integer(required=True)
    tax = fields.Integer(required=True)


class InvoiceSummarySchema(Schema):
    number = fields.String(required=True)
    issued_at = fields.String(required=True)
    kind = fields.String(required=True)
    currency = fields.String(required=True)
    subtotal = fields.Integer(required=True)
    credit = fields.Integer(required=True)
    tax = fields.Integer(required=True)
    total = fields.Integer(required=True)
    payment = fields.Nested(InvoicePaymentSchema, required=True)
    position = fields.Integer(required=True)


class InvoicePageSchema(Schema):
    organization_id = fields.String(required=True)
    invoices = fields.List(fields.Nested(InvoiceSummarySchema), required=True)
    next = fields.String(required=True, allow_none=True)


class InvoiceSchema(Schema):
    number = fields.String(required=True)
    issued_at = fields.String(required=True)
    kind = fields.String(required=True)
    charge_key = fields.String(required=True)
    currency = fields.String(required=True)
    issuer = fields.Nested(InvoiceIssuerSchema, required=True)
    billing_contact = fields.Dict(required=True)
    lines = fields.List(fields.Nested(InvoiceLineSchema), required=True)
    credits = fields.List(fields.Nested(InvoiceCreditSchema), required=True)
    subtotal = fields.Integer(required=True)
    credit = fields.Integer(required=True)
    tax_summary = fields.List(fields.Nested(TaxSummarySchema), required=True)
    tax = fields.Integer(required=True)
    total = fields.Integer(required=True)
    payment = fields.Nested(InvoicePaymentSchema, required=True)
    period_start = fields.String(required=True, allow_none=True)
    period_end = fields.String(required=True, allow_none=True)
    organization_id = fields.String(required=True)
    #: The log position of the event that issued it.
    position = fields.Integer(required=True)
