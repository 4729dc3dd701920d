"""The qualified invoice (適格請求書, SPEC §11): a pure model and its builder.

Every charge — the upgrade, a renewal, a mid-term change, a total of 0
included — issues exactly one invoice, and the invoice is recorded *in the
charging event* (``Invoice.to_dict()``): its number is decided once, when the
charge succeeded, and the invoices projection only ever copies it.

What an invoice adds up to (all integers, minor units):

- ``subtotal`` = the sum of the lines;
- ``credit`` = the sum of the credit lines (never more than the subtotal);
- the tax summary has one entry per tax rate: the rate's ``taxable`` amount
  (its lines after the credits assigned to it) and its ``tax``, rounded down
  **once per rate per invoice** (:func:`domain.tax.consumption_tax`);
- ``total`` = ``subtotal − credit + tax`` — what was charged.

Credits are assigned to the rates from the highest down (a billing engineer's
choice SPEC leaves open; with the default catalog's one rate it makes no
difference; see docs/domain.md).

:func:`build_invoice` is the only way the service makes an invoice; the
charging code gives it the lines and credits it charged for and checks that
its total is the amount the gateway charged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.catalog import INVOICE_PREFIX_PATTERN, Bundle, Catalog, Issuer
from domain.clock import ensure_utc
from domain.quote import Credit, service_credits
from domain.tax import consumption_tax

#: ``{prefix}-{YYYY}-{seq:06d}``; a sequence past 999999 keeps all its digits.
INVOICE_NUMBER = re.compile(
    f"^(?P<prefix>{INVOICE_PREFIX_PATTERN})-(?P<year>[0-9]{{4}})-(?P<seq>[0-9]{{6,}})$"
)

#: What the invoice says about the payment when nothing was charged (a total of 0).
NO_CHARGE = "no_charge"
CHARGED = "charged"

#: Where a credit line's money comes from.
CREDIT_FROM_SERVICE = "standalone_service"
CREDIT_FROM_BALANCE = "credit_balance"
#: The unused part of the bundle's own running period (a switch to a longer period).
CREDIT_FROM_UNUSED_PERIOD = "unused_period"
CREDIT_SOURCES = (CREDIT_FROM_SERVICE, CREDIT_FROM_BALANCE, CREDIT_FROM_UNUSED_PERIOD)

#: Which charge issued the invoice.
INVOICE_KINDS = ("upgrade", "renewal", "change")

_PERIOD_EN = {"monthly": "monthly", "yearly": "yearly"}
_PERIOD_JA = {"monthly": "月払い", "yearly": "年払い"}


def format_invoice_number(prefix: str, year: int, sequence: int) -> str:
    """``SS-2026-000001``: the issuer's prefix, the calendar year, six digits."""
    if sequence < 1:
        msg = f"invoice sequence {sequence} must be at least 1"
        raise ValueError(msg)
    return f"{prefix}-{year:04d}-{sequence:06d}"


def format_amount(amount: int, currency: str = "JPY") -> str:
    """An amount as an invoice prints it: ``¥1,234`` (yen have no minor unit);
    another currency as ``1,234 EUR`` (minor units, as stored)."""
    sign = "-" if amount < 0 else ""
    if currency == "JPY":
        return f"{sign}¥{abs(amount):,}"
    return f"{sign}{abs(amount):,} {currency}"


def is_invoice_number(text: str) -> bool:
    return INVOICE_NUMBER.match(text) is not None


def invoice_year(issued_at: datetime) -> int:
    """The calendar year an invoice is numbered in: that of its UTC issue time.

    The project counts days (plan periods, credits) in UTC; invoice years follow.
    """
    return ensure_utc(issued_at).year


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One charged line: so many units at a unit price for so many months or days."""

    description: str
    description_ja: str
    quantity: int
    unit_price: int
    amount: int
    tax_rate: int
    #: Whole months billed (a period's line), or ``None`` for a pro-rata line.
    months: int | None = None
    #: Days billed (a pro-rata line of a mid-term change), or ``None``.
    days: int | None = None
    #: The catalog code (bundle or add-on) the line charges for, when it has one.
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "description_ja": self.description_ja,
            "code": self.code,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "months": self.months,
            "days": self.days,
            "amount": self.amount,
            "tax_rate": self.tax_rate,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InvoiceLine:
        return cls(
            description=data["description"],
            description_ja=data["description_ja"],
            code=data.get("code"),
            quantity=data["quantity"],
            unit_price=data["unit_price"],
            months=data.get("months"),
            days=data.get("days"),
            amount=data["amount"],
            tax_rate=data["tax_rate"],
        )


@dataclass(frozen=True, slots=True)
class CreditLine:
    """Money taken off the subtotal: a standalone plan's unused time, or the balance."""

    source: str  # one of CREDIT_SOURCES
    amount: int
    #: The standalone service whose unused time is credited (``None`` for the balance).
    service: str | None = None
    description: str = ""
    description_ja: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "service": self.service,
            "description": self.description,
            "description_ja": self.description_ja,
            "amount": self.amount,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreditLine:
        return cls(
            source=data["source"],
            service=data.get("service"),
            description=data.get("description", ""),
            description_ja=data.get("description_ja", ""),
            amount=data["amount"],
        )


@dataclass(frozen=True, slots=True)
class TaxSummary:
    """One tax rate's share of an invoice (the qualified invoice's 税率ごとの合計)."""

    rate: int
    taxable: int
    tax: int

    def to_dict(self) -> dict[str, int]:
        return {"rate": self.rate, "taxable": self.taxable, "tax": self.tax}


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    """How the total was paid: a card (brand, last 4 digits), or nothing to charge."""

    status: str  # CHARGED or NO_CHARGE
    brand: str | None = None
    last4: str | None = None

    @classmethod
    def card(cls, brand: str | None, last4: str | None) -> InvoicePayment:
        return cls(status=CHARGED, brand=brand, last4=last4)

    @classmethod
    def no_charge(cls) -> InvoicePayment:
        return cls(status=NO_CHARGE)

    def to_dict(self) -> dict[str, Any]:
        if self.status == NO_CHARGE:
            return {"status": NO_CHARGE}
        return {"status": CHARGED, "brand": self.brand, "last4": self.last4}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InvoicePayment:
        if data["status"] == NO_CHARGE:
            return cls.no_charge()
        return cls.card(data.get("brand"), data.get("last4"))


@dataclass(frozen=True, slots=True)
class InvoiceIssuer:
    """The issuer as it was when the invoice was issued (the catalog may change later)."""

    name: str
    name_en: str
    registration_number: str
    address: str
    email: str

    @classmethod
    def from_catalog(cls, issuer: Issuer) -> InvoiceIssuer:
        return cls(
            name=issuer.name,
            name_en=issuer.name_en,
            registration_number=issuer.registration_number,
            address=issuer.address,
            email=issuer.email,
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "name_en": self.name_en,
            "registration_number": self.registration_number,
            "address": self.address,
            "email": self.email,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InvoiceIssuer:
        return cls(
            name=data["name"],
            name_en=data["name_en"],
            registration_number=data["registration_number"],
            address=data["address"],
            email=data["email"],
        )


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    issued_at: datetime
    kind: str
    #: The id of the charge that issued it (the checkout id of an upgrade, …):
    #: the key its number was allocated under.
    charge_key: str
    currency: str
    issuer: InvoiceIssuer
    billing_contact: Mapping[str, Any]
    lines: tuple[InvoiceLine, ...]
    credits: tuple[CreditLine, ...]
    subtotal: int
    credit: int
    tax_summary: tuple[TaxSummary, ...]
    tax: int
    total: int
    payment: InvoicePayment
    #: The service period the charge pays for (start, end), when it has one.
    period_start: datetime | None = None
    period_end: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the charging event and served by the API."""
        return {
            "number": self.number,
            "issued_at": self.issued_at.isoformat(),
            "kind": self.kind,
            "charge_key": self.charge_key,
            "currency": self.currency,
            "issuer": self.issuer.to_dict(),
            "billing_contact": dict(self.billing_contact),
            "lines": [line.to_dict() for line in self.lines],
            "credits": [credit.to_dict() for credit in self.credits],
            "subtotal": self.subtotal,
            "credit": self.credit,
            "tax_summary": [entry.to_dict() for entry in self.tax_summary],
            "tax": self.tax,
            "total": self.total,
            "payment": self.payment.to_dict(),
            "period_start": None if self.period_start is None else self.period_start.isoformat(),
            "period_end": None if self.period_end is None else self.period_end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Invoice:
        """Read the JSON form back (the stored form is the truth: nothing is recomputed)."""
        return cls(
            number=data["number"],
            issued_at=datetime.fromisoformat(data["issued_at"]),
            kind=data["kind"],
            charge_key=data["charge_key"],
            currency=data["currency"],
            issuer=InvoiceIssuer.from_dict(data["issuer"]),
            billing_contact=dict(data["billing_contact"]),
            lines=tuple(InvoiceLine.from_dict(line) for line in data["lines"]),
            credits=tuple(CreditLine.from_dict(credit) for credit in data["credits"]),
            subtotal=data["subtotal"],
            credit=data["credit"],
            tax_summary=tuple(
                TaxSummary(rate=e["rate"], taxable=e["taxable"], tax=e["tax"])
                for e in data["tax_summary"]
            ),
            tax=data["tax"],
            total=data["total"],
            payment=InvoicePayment.from_dict(data["payment"]),
            period_start=_time_or_none(data.get("period_start")),
            period_end=_time_or_none(data.get("period_end")),
        )


def _time_or_none(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def tax_summary(lines: Sequence[InvoiceLine], credit: int) -> tuple[tuple[TaxSummary, ...], int]:
    """Per-rate taxable amounts and tax, credits assigned from the highest rate down.

    Returns the summary (highest rate first) and the total tax.
    """
    by_rate: dict[int, int] = {}
    for line in lines:
        by_rate[line.tax_rate] = by_rate.get(line.tax_rate, 0) + line.amount
    remaining_credit = credit
    summary: list[TaxSummary] = []
    for rate in sorted(by_rate, reverse=True):
        assigned = min(remaining_credit, by_rate[rate])
        remaining_credit -= assigned
        taxable = by_rate[rate] - assigned
        summary.append(TaxSummary(rate=rate, taxable=taxable, tax=consumption_tax(taxable, rate)))
    return tuple(summary), sum(entry.tax for entry in summary)


def build_invoice(
    *,
    number: str,
    issued_at: datetime,
    kind: str,
    charge_key: str,
    currency: str,
    issuer: InvoiceIssuer,
    billing_contact: Mapping[str, Any],
    lines: Sequence[InvoiceLine],
    credits: Sequence[CreditLine],
    payment: InvoicePayment,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> Invoice:
    """Add up an invoice; refuse one that cannot be right.

    Raises ``ValueError`` for a malformed number, negative amounts, a line
    whose amount is not quantity × unit price (× months), credits above the
    subtotal, an unknown kind, or a card payment on a total of 0 (and no
    payment on a total above 0): these are programming errors, never input.
    """
    if not is_invoice_number(number):
        msg = f"{number!r} is not an invoice number ({{prefix}}-{{YYYY}}-{{seq:06d}})"
        raise ValueError(msg)
    if kind not in INVOICE_KINDS:
        msg = f"unknown invoice kind {kind!r}"
        raise ValueError(msg)
    for line in lines:
        _check_line(line)
    for credit_line in credits:
        if credit_line.amount < 0:
            msg = f"credit line {credit_line} is negative"
            raise ValueError(msg)
        if credit_line.source not in CREDIT_SOURCES:
            msg = f"unknown credit source {credit_line.source!r}"
            raise ValueError(msg)
    subtotal = sum(line.amount for line in lines)
    credit = sum(credit_line.amount for credit_line in credits)
    if credit > subtotal:
        msg = f"credits {credit} exceed the subtotal {subtotal}"
        raise ValueError(msg)
    summary, tax = tax_summary(lines, credit)
    total = subtotal - credit + tax
    if (payment.status == NO_CHARGE) != (total == 0):
        msg = f"payment {payment.status} does not fit a total of {total}"
        raise ValueError(msg)
    return Invoice(
        number=number,
        issued_at=ensure_utc(issued_at),
        kind=kind,
        charge_key=charge_key,
        currency=currency,
        issuer=issuer,
        billing_contact=dict(billing_contact),
        lines=tuple(lines),
        credits=tuple(credits),
        subtotal=subtotal,
        credit=credit,
        tax_summary=summary,
        tax=tax,
        total=total,
        payment=payment,
        period_start=period_start,
        period_end=period_end,
    )


def _check_line(line: InvoiceLine) -> None:
    if min(line.quantity, line.unit_price, line.amount, line.tax_rate) < 0:
        msg = f"line {line.description!r} has a negative figure"
        raise ValueError(msg)
    if (line.months is None) == (line.days is None):
        msg = f"line {line.description!r} must bill either months or days"
        raise ValueError(msg)
    if line.months is not None and line.amount != line.quantity * line.unit_price * line.months:
        msg = f"line {line.description!r}: amount is not quantity × unit price × months"
        raise ValueError(msg)


# -- descriptions of the catalog's lines -----------------------------------------


def period_line(
    bundle: Bundle,
    *,
    kind: str,
    code: str,
    quantity: int,
    unit_price: int,
    months: int,
    billing_period: str,
) -> InvoiceLine:
    """A whole period's line of the bundle (``kind`` "bundle") or an add-on ("add_on")."""
    name_en, name_ja = _names(bundle, kind, code)
    return InvoiceLine(
        description=f"{name_en} ({_PERIOD_EN[billing_period]}), {quantity} × {months} months",
        description_ja=f"{name_ja}（{_PERIOD_JA[billing_period]}）{quantity} × {months}か月",
        code=code,
        quantity=quantity,
        unit_price=unit_price,
        months=months,
        amount=quantity * unit_price * months,
        tax_rate=bundle.tax_rate_percent,
    )


def pro_rata_line(
    bundle: Bundle,
    *,
    kind: str,
    code: str,
    quantity: int,
    unit_price: int,
    days: int,
    amount: int,
) -> InvoiceLine:
    """A pro-rata line (a mid-term increase): ``quantity`` more units for ``days`` days."""
    name_en, name_ja = _names(bundle, kind, code)
    return InvoiceLine(
        description=f"{name_en}, {quantity} more for {days} days (pro rata)",
        description_ja=f"{name_ja} 追加 {quantity}（{days}日分・日割り）",
        code=code,
        quantity=quantity,
        unit_price=unit_price,
        days=days,
        amount=amount,
        tax_rate=bundle.tax_rate_percent,
    )


def service_credit_line(
    service: str, service_name: str, remaining_days: int, amount: int
) -> CreditLine:
    """The unused part of a standalone plan, credited at the upgrade."""
    return CreditLine(
        source=CREDIT_FROM_SERVICE,
        service=service,
        description=f"Credit: unused {service_name} plan ({remaining_days} days)",
        description_ja=f"{service_name} 単体契約の未使用分（残り{remaining_days}日）",
        amount=amount,
    )


def balance_credit_line(amount: int) -> CreditLine:
    """Money taken from the organization's credit balance."""
    return CreditLine(
        source=CREDIT_FROM_BALANCE,
        description="Credit balance applied",
        description_ja="クレジット残高の充当",
        amount=amount,
    )


def unused_period_credit_line(
    bundle: Bundle, billing_period: str, remaining_days: int, amount: int
) -> CreditLine:
    """The unused part of the running bundle period, credited when a longer one starts now."""
    return CreditLine(
        source=CREDIT_FROM_UNUSED_PERIOD,
        description=(
            f"Credit: unused {bundle.name} {_PERIOD_EN[billing_period]} period "
            f"({remaining_days} days)"
        ),
        description_ja=(
            f"{bundle.name}（{_PERIOD_JA[billing_period]}）現契約期間の未使用分（残り{remaining_days}日）"
        ),
        amount=amount,
    )


def _names(bundle: Bundle, kind: str, code: str) -> tuple[str, str]:
    if kind == "bundle":
        return bundle.name, bundle.name
    add_on = bundle.add_on(code)
    name = add_on.name if add_on is not None else code
    return f"{name} (add-on)", f"{name}（オプション）"


def applied_service_credits(
    credits: Sequence[Credit | Mapping[str, Any]], applied: int, service_names: Mapping[str, str]
) -> tuple[CreditLine, ...]:
    """The credit lines of an upgrade: one per service, up to ``applied`` in all.

    ``credits`` are the quote's period credits (``Credit``, or their JSON form
    as the events store it). Each service's line is its share of the credit
    applied, ``domain.quote.service_credits`` — the very split its
    ``StandaloneContractTerminated`` records — with its periods' unused days
    summed. A quote credits at most its subtotal; the rest
    (``unapplied_credit``) opens the credit balance and appears on the later
    invoice that uses it, so every credited yen is on exactly one invoice.
    Services after the cap get no line.
    """
    lines: list[CreditLine] = []
    for share in service_credits([_as_credit(c) for c in credits], applied):
        if share.applied <= 0:
            continue
        lines.append(
            service_credit_line(
                share.service,
                service_names.get(share.service, share.service),
                share.remaining_days,
                share.applied,
            )
        )
    return tuple(lines)


def _as_credit(credit: Credit | Mapping[str, Any]) -> Credit:
    if isinstance(credit, Credit):
        return credit
    return Credit(
        service=str(credit["service"]),
        amount_paid=int(credit.get("amount_paid", 0)),
        remaining_days=int(credit["remaining_days"]),
        total_days=int(credit.get("total_days", 0)),
        amount=int(credit["amount"]),
    )


# -- the invoices of the charges ---------------------------------------------------


def card_or_no_charge(total: int, payment: Mapping[str, Any]) -> InvoicePayment:
    """The invoice's payment: the card charged, or "no charge" for a total of 0."""
    if total == 0:
        return InvoicePayment.no_charge()
    return InvoicePayment.card(payment.get("brand"), payment.get("last4"))


def upgrade_invoice(
    *,
    number: str,
    issued_at: datetime,
    checkout_id: str,
    quote: Mapping[str, Any],
    billing_contact: Mapping[str, Any],
    payment: Mapping[str, Any],
    catalog: Catalog,
) -> Invoice:
    """The invoice of an upgrade: the quote's lines, one credit line per credited plan.

    Only the credit the quote applied is on it (``credit``); the rest
    (``unapplied_credit``) opens the credit balance and is on the invoice of
    the charge that uses it. Its total must be the quote's: what was charged.
    """
    bundle = catalog.bundle
    lines = [
        period_line(
            bundle,
            kind=line["kind"],
            code=line["code"],
            quantity=int(line["quantity"]),
            unit_price=int(line["unit_price"]),
            months=int(line["months"]),
            billing_period=str(quote["billing_period"]),
        )
        for line in quote["lines"]
    ]
    names = {service.code: service.name for service in catalog.services}
    credits = applied_service_credits(quote["credits"], int(quote["credit"]), names)
    invoice = build_invoice(
        number=number,
        issued_at=issued_at,
        kind="upgrade",
        charge_key=checkout_id,
        currency=str(quote["currency"]),
        issuer=InvoiceIssuer.from_catalog(catalog.issuer),
        billing_contact=billing_contact,
        lines=lines,
        credits=credits,
        payment=card_or_no_charge(int(quote["total"]), payment),
        period_start=datetime.fromisoformat(quote["contract_start"]),
        period_end=datetime.fromisoformat(quote["contract_end"]),
    )
    if (invoice.subtotal, invoice.credit, invoice.tax, invoice.total) != (
        quote["subtotal"],
        quote["credit"],
        quote["tax"],
        quote["total"],
    ):
        msg = f"the invoice of {checkout_id} does not add up to its quote"
        raise ValueError(msg)
    return invoice
