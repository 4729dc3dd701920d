"""Marshmallow schemas: request bodies (unknown fields refused) and answers.

Request schemas check *shape* (types, required fields, sizes); the business
rules (seats against current licenses, known add-ons, date order...) are the
domain's, so there is one source of truth for each rule. What the schemas
import from the domain they also state in the OpenAPI document — country
codes as an enum, every text field's ``pattern`` (no control characters,
no lone surrogates: domain/text.py, enforced for every string by
interface/request_guard.py) — so a request the document calls valid is
refused only by a rule it cannot state.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from application.projections.read_model import MAX_DIRECTORY_PAGE
from domain.catalog import BILLING_PERIODS
from domain.countries import ISO_3166_ALPHA2
from domain.facts import BundleState
from domain.organization import MAX_NAME_LENGTH, MAX_STANDALONE_SEATS
from domain.quote import MAX_ADD_ON_QUANTITY, MAX_SEATS, MIN_SEATS
from domain.text import SAFE_TEXT_DESCRIPTION, SAFE_TEXT_PATTERN

MAX_ID = 128
MAX_TEXT = 200
MAX_LIST = 100


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


def _text(*, max_length: int, **kwargs: Any) -> fields.String:
    """A one-line text field: 1 to ``max_length`` characters, none the log refuses.

    The ``pattern`` documents domain/text.py's rule; the request guard enforces it
    (for every string, documented or not) before the schema runs.
    """
    return fields.String(
        validate=validate.Length(min=1, max=max_length),
        metadata={"pattern": SAFE_TEXT_PATTERN, "description": SAFE_TEXT_DESCRIPTION},
        **kwargs,
    )


def _user_id(**kwargs: Any) -> fields.String:
    return _text(max_length=MAX_ID, **kwargs)


def _country(**kwargs: Any) -> fields.String:
    """An officially assigned ISO 3166-1 alpha-2 code (domain/countries.py), an enum."""
    return fields.String(
        validate=validate.OneOf(
            sorted(ISO_3166_ALPHA2), error="Must be an ISO 3166-1 alpha-2 code such as 'JP'."
        ),
        **kwargs,
    )


# -- requests -------------------------------------------------------------------


class RegisterOrganizationSchema(StrictSchema):
    name = _text(max_length=MAX_NAME_LENGTH, required=True)
    country = _country(required=True)
    owner_user_id = _user_id(required=True)


class StandaloneSubscriptionSchema(StrictSchema):
    seats = fields.Integer(
        required=True, strict=True, validate=validate.Range(1, MAX_STANDALONE_SEATS)
    )
    billing_period = fields.String(required=True, validate=validate.OneOf(BILLING_PERIODS))
    amount_paid = fields.Integer(required=True, strict=True, validate=validate.Range(0, 10**12))
    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True)
    super_admin = _user_id(required=True)
    admins = fields.List(_user_id(), load_default=list, validate=validate.Length(max=MAX_LIST))


class ServiceAdminsSchema(StrictSchema):
    super_admin = _user_id(required=True)
    admins = fields.List(_user_id(), load_default=list, validate=validate.Length(max=MAX_LIST))


class EmptySchema(StrictSchema):
    """Start, extend and cancel take no fields: the acting user is the token's ``sub``."""


class AddOnSchema(StrictSchema):
    code = _text(max_length=MAX_ID, required=True)
    quantity = fields.Integer(
        required=True, strict=True, validate=validate.Range(1, MAX_ADD_ON_QUANTITY)
    )


class BillingContactSchema(StrictSchema):
    company_name = _text(max_length=MAX_TEXT, required=True)
    country = _country(required=True)
    email = fields.Email(required=True, validate=validate.Length(max=254))


class QuoteRequestSchema(StrictSchema):
    billing_period = fields.String(required=True, validate=validate.OneOf(BILLING_PERIODS))
    seats = fields.Integer(
        required=True, strict=True, validate=validate.Range(MIN_SEATS, MAX_SEATS)
    )
    add_ons = fields.List(
        fields.Nested(AddOnSchema), load_default=list, validate=validate.Length(max=20)
    )
    billing_contact = fields.Nested(BillingContactSchema, required=True)


class UpgradeRequestSchema(QuoteRequestSchema):
    payment_token = _text(max_length=MAX_TEXT, required=True)
    expected_total = fields.Integer(required=True, strict=True, validate=validate.Range(0, 10**12))


class PaymentMethodSchema(StrictSchema):
    #: A gateway token (``tok_…``), never card data (SPEC §5).
    payment_token = _text(max_length=MAX_TEXT, required=True)


class EventsQuerySchema(StrictSchema):
    after = fields.Integer(load_default=0, validate=validate.Range(0, 2**62))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class AccessQuerySchema(StrictSchema):
    min_position = fields.Integer(load_default=None, validate=validate.Range(0, 2**62))


class DirectoryQuerySchema(StrictSchema):
    state = fields.String(
        load_default=None,
        validate=validate.OneOf(BundleState.ALL),
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(1, MAX_DIRECTORY_PAGE))
    after = fields.UUID(load_default=None)
    min_position = fields.Integer(load_default=None, validate=validate.Range(0, 2**62))


class TestClockChangeSchema(StrictSchema):
    """Exactly one of the four moves (SPEC §7); the OpenAPI says so with
    ``minProperties``/``maxProperties`` (see ``TEST_CLOCK_CHANGE_EXTRAS``)."""

    __test__ = False
    advance_days = fields.Integer(strict=True, validate=validate.Range(0, 3650))
    advance_seconds = fields.Integer(strict=True, validate=validate.Range(0, 3650 * 86400))
    set_to = fields.AwareDateTime(
        metadata={"description": "Jump to this instant (forward only once the log holds events)"}
    )
    frozen = fields.Boolean(
        metadata={"description": "true: time stands still between calls; false: runs on"}
    )

    @validates_schema
    def _exactly_one(self, data: dict[str, object], **_kwargs: object) -> None:
        if len(data) != 1:
            raise ValidationError(
                "Send exactly one of advance_days, advance_seconds, set_to, frozen.",
                field_name="_schema",
            )


#: JSON Schema keywords marshmallow cannot state: one move per request.
TEST_CLOCK_CHANGE_EXTRAS = {"minProperties": 1, "maxProperties": 1}


# -- answers ----------------------------------------------------------------------


class CommandResultSchema(Schema):
    organization_id = fields.String(required=True)
    version = fields.Integer(required=True)
    position = fields.Integer(required=True, allow_none=True)


class OrganizationSchema(CommandResultSchema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    country = fields.String(required=True)
    owner_user_id = fields.String(required=True)


class SubscriptionRecordedSchema(CommandResultSchema):
    service = fields.String(required=True)


class ContractAddOnSchema(Schema):
    code = fields.String(required=True)
    quantity = fields.Integer(required=True)


class ScheduledChangeSchema(Schema):
    """What takes effect at the next renewal; a null term is kept as it is."""

    seats = fields.Integer(required=True, allow_none=True)
    add_ons = fields.List(fields.Nested(ContractAddOnSchema), required=True, allow_none=True)
    billing_period = fields.String(required=True, allow_none=True)


class CardOnFileSchema(Schema):
    brand = fields.String(required=True, allow_none=True)
    last4 = fields.String(required=True, allow_none=True)


class ContractTermsSchema(Schema):
    """The contract block of SPEC §11 (domain.facts.ContractTerms.to_dict)."""

    billing_period = fields.String(required=True, validate=validate.OneOf(BILLING_PERIODS))
    seats = fields.Integer(required=True)
    add_ons = fields.List(fields.Nested(ContractAddOnSchema), required=True)
    current_period_start = fields.String(required=True)
    current_period_end = fields.String(required=True)
    cancel_at_period_end = fields.Boolean(required=True)
    scheduled_change = fields.Nested(ScheduledChangeSchema, required=True, allow_none=True)
    credit_balance = fields.Integer(required=True)
    payment_method = fields.Nested(CardOnFileSchema, required=True)
    #: Only while renewal payments fail (past_due).
    past_due_since = fields.String()
    next_payment_attempt_at = fields.String(allow_none=True)
    #: Only once the contract ended.
    ended_at = fields.String(allow_none=True)
    end_reason = fields.String(allow_none=True)


class BundleViewSchema(Schema):
    code = fields.String(required=True)
    state = fields.String(
        required=True,
        validate=validate.OneOf(BundleState.ALL),
    )
    trial_ends_at = fields.String(required=True, allow_none=True)
    days_left = fields.Integer(required=True, allow_none=True)
    extensions_used = fields.Integer(required=True)
    available_actions = fields.List(fields.String(), required=True)
    #: From ``active`` on (SPEC §10, §11).
    contract = fields.Nested(ContractTermsSchema)


class SubscriptionSchema(Schema):
    organization_id = fields.String(required=True)
    version = fields.Integer(required=True)
    position = fields.Integer(required=True)
    state = fields.String(required=True, validate=validate.OneOf(BundleState.ALL))
    contract = fields.Nested(ContractTermsSchema, required=True)


class SubscriptionCommandSchema(CommandResultSchema):
    state = fields.String(required=True, validate=validate.OneOf(BundleState.ALL))
    contract = fields.Nested(ContractTermsSchema, required=True, allow_none=True)


class PaymentMethodChangedSchema(SubscriptionCommandSchema):
    #: While past due the renewal is charged at once: ``renewed`` or ``failed``
    #: (``pending`` if the gateway could not be reached); ``null`` otherwise.
    renewal = fields.String(required=True, allow_none=True)


class ServiceAccessSchema(Schema):
    code = fields.String(required=True)
    edition = fields.String(required=True)
    contract = fields.String(required=True)
    access = fields.String(required=True)
    url = fields.String(required=True, allow_none=True)
    note = fields.String()


class AccessViewSchema(Schema):
    organization_id = fields.String(required=True)
    version = fields.Integer(required=True)
    position = fields.Integer(required=True)
    bundle = fields.Nested(BundleViewSchema, required=True)
    services = fields.List(fields.Nested(ServiceAccessSchema), required=True)


class TrialCommandSchema(CommandResultSchema):
    bundle = fields.Nested(BundleViewSchema, required=True)


class EligibilitySchema(Schema):
    organization_id = fields.String(required=True)
    user_id = fields.String(required=True)
    eligible = fields.Boolean(required=True)
    reason = fields.String(required=True, allow_none=True)
    state = fields.String(required=True)
    missing_admin_rights = fields.List(fields.String(), required=True)
    super_admins = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    carried_over = fields.List(fields.String(), required=True)
    usable_in_bundle = fields.List(fields.String(), required=True)
    standalone_only = fields.List(fields.String(), required=True)
    trial_services = fields.List(fields.String(), required=True)
    trial_days = fields.Integer(required=True)
    version = fields.Integer(required=True)


class QuoteLineSchema(Schema):
    kind = fields.String(required=True)
    code = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True)
    months = fields.Integer(required=True)
    amount = fields.Integer(required=True)


class CreditSchema(Schema):
    """One standalone plan period's credit (a service may have several)."""

    service = fields.String(required=True)
    amount_paid = fields.Integer(required=True)
    remaining_days = fields.Integer(required=True)
    total_days = fields.Integer(required=True)
    amount = fields.Integer(required=True)
    #: The period credited (``YYYY-MM-DD``, end exclusive).
    period_start = fields.String(required=True, allow_none=True)
    period_end = fields.String(required=True, allow_none=True)


class QuoteSchema(Schema):
    currency = fields.String(required=True)
    billing_period = fields.String(required=True)
    seats = fields.Integer(required=True)
    lines = fields.List(fields.Nested(QuoteLineSchema), required=True)
    subtotal = fields.Integer(required=True)
    credits = fields.List(fields.Nested(CreditSchema), required=True)
    credit = fields.Integer(required=True)
    unapplied_credit = fields.Integer(required=True)
    tax = fields.Integer(required=True)
    total = fields.Integer(required=True)
    contract_start = fields.String(required=True)
    contract_end = fields.String(required=True)


class PaymentReferenceSchema(Schema):
    #: null when nothing was charged (a total of 0 calls no gateway).
    gateway = fields.String(required=True, allow_none=True)
    charge_id = fields.String(required=True, allow_none=True)
    brand = fields.String(required=True, allow_none=True)
    last4 = fields.String(required=True, allow_none=True)


class ReceiptSchema(QuoteSchema):
    organization_id = fields.String(required=True)
    checkout_id = fields.String(required=True)
    payment = fields.Nested(PaymentReferenceSchema, required=True)
    #: The purchase's invoice (``GET .../invoices/{number}``); null only for a
    #: purchase recorded before invoices existed.
    invoice_number = fields.String(required=True, allow_none=True)
    version = fields.Integer(required=True)
    position = fields.Integer(required=True, allow_none=True)


class EventSchema(Schema):
    position = fields.Integer(required=True)
    organization_id = fields.String(required=True)
    version = fields.Integer(required=True)
    type = fields.String(required=True)
    at = fields.String(required=True)
    data = fields.Dict(required=True)
    chain = fields.String(required=True)


class EventPageSchema(Schema):
    events = fields.List(fields.Nested(EventSchema), required=True)
    next = fields.Integer(required=True, allow_none=True)


class DirectoryEntrySchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "The state shown now"})
    recorded_state = fields.String(
        required=True, metadata={"description": "The state the events recorded"}
    )
    trial_ends_at = fields.String(required=True, allow_none=True)
    version = fields.Integer(required=True)
    position = fields.Integer(required=True)


class DirectoryPageSchema(Schema):
    organizations = fields.List(fields.Nested(DirectoryEntrySchema), required=True)
    next = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as `after` for the next page; null on the last"},
    )


class ViewFaultSchema(Schema):
    position = fields.Integer(required=True)
    organization_id = fields.String(required=True)
    version = fields.Integer(required=True)
    topic = fields.String(required=True)
    problem = fields.String(required=True)


class ViewFaultsSchema(Schema):
    count = fields.Integer(required=True)
    faults = fields.List(
        fields.Nested(ViewFaultSchema),
        required=True,
        metadata={"description": "The first 20, by log position"},
    )


class OneViewLagSchema(Schema):
    latest_position = fields.Integer(required=True)
    view_position = fields.Integer(required=True)
    lag = fields.Integer(required=True)


class ViewLagSchema(OneViewLagSchema):
    """The access and directory views' lag at the top (one follower applies both),
    and each other view's own lag beside it."""

    invoices = fields.Nested(
        OneViewLagSchema,
        required=True,
        metadata={"description": "The invoices view, which its own follower applies"},
    )
    faults = fields.Nested(
        ViewFaultsSchema,
        metadata={"description": "Events the views passed over: they cannot be decoded or applied"},
    )


class TestClockSchema(Schema):
    __test__ = False
    now = fields.String(required=True)
    frozen = fields.Boolean(required=True)
    offset_seconds = fields.Integer(required=True)


class HealthSchema(Schema):
    status = fields.String(required=True)
    views = fields.Nested(ViewLagSchema, metadata={"description": "Readiness only"})


class ErrorContentSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)
    request_id = fields.String(required=True)


class ErrorAnswerSchema(Schema):
    error = fields.Nested(ErrorContentSchema, required=True)
