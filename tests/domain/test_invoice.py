"""The qualified invoice adds up: lines, credits, tax once per rate, total.

The property: whatever lines and credits a charge has, every yen of them is
on the invoice exactly once (subtotal = the lines, credit = the credit lines),
tax is rounded down once per rate on what is left after credits, and the
total is subtotal − credit + tax.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.catalog_loader import default_catalog
from domain.invoice import (
    CREDIT_FROM_BALANCE,
    CreditLine,
    Invoice,
    InvoiceIssuer,
    InvoiceLine,
    InvoicePayment,
    applied_service_credits,
    balance_credit_line,
    build_invoice,
    format_invoice_number,
    invoice_year,
    is_invoice_number,
    period_line,
)

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CATALOG = default_catalog()
ISSUER = InvoiceIssuer.from_catalog(CATALOG.issuer)
CONTACT = {"company_name": "Acme KK", "country": "JP", "email": "billing@acme.example"}


def invoice(
    lines: list[InvoiceLine],
    credits: Sequence[CreditLine] = (),
    payment: InvoicePayment | None = None,
) -> Invoice:
    due = sum(line.amount for line in lines) - sum(c.amount for c in credits)
    return build_invoice(
        number="SS-2026-000001",
        issued_at=T0,
        kind="upgrade",
        charge_key="chk_1",
        currency="JPY",
        issuer=ISSUER,
        billing_contact=CONTACT,
        lines=lines,
        credits=list(credits),
        payment=payment
        or (InvoicePayment.card("visa", "4242") if due else InvoicePayment.no_charge()),
    )


def line(amount: int, rate: int = 10, quantity: int = 1) -> InvoiceLine:
    return InvoiceLine(
        description="x",
        description_ja="x",
        quantity=quantity,
        unit_price=amount,
        months=1,
        amount=quantity * amount,
        tax_rate=rate,
    )


def test_numbers_are_the_prefix_the_year_and_six_digits() -> None:
    assert format_invoice_number("SS", 2026, 1) == "SS-2026-000001"
    assert format_invoice_number("SS", 2027, 123456) == "SS-2027-123456"
    assert is_invoice_number("SS-2026-000001")
    assert not is_invoice_number("SS-2026-1")
    assert not is_invoice_number("ss-2026-000001")
    with pytest.raises(ValueError, match="at least 1"):
        format_invoice_number("SS", 2026, 0)


def test_the_year_is_that_of_the_utc_issue_time() -> None:
    assert invoice_year(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == 2026
    assert invoice_year(datetime(2027, 1, 1, 0, 0, tzinfo=UTC)) == 2027


def test_the_spec_upgrade_invoice_adds_up_like_its_quote() -> None:
    bundle = CATALOG.bundle
    lines = [
        period_line(
            bundle,
            kind="bundle",
            code="crmplus",
            quantity=10,
            unit_price=6000,
            months=12,
            billing_period="yearly",
        ),
        period_line(
            bundle,
            kind="add_on",
            code="storage-10gb",
            quantity=2,
            unit_price=1000,
            months=12,
            billing_period="yearly",
        ),
    ]
    credits = applied_service_credits(
        [{"service": "crm", "remaining_days": 100, "amount": 32876}], 32876, {"crm": "CRM"}
    )
    made = invoice(lines, list(credits))
    assert (made.subtotal, made.credit, made.tax, made.total) == (744000, 32876, 71112, 782236)
    assert [e.to_dict() for e in made.tax_summary] == [
        {"rate": 10, "taxable": 711124, "tax": 71112}
    ]
    assert made.issuer.registration_number == "T1234567890123"
    assert made.credits[0].service == "crm"
    assert "CRM" in made.credits[0].description_ja


def test_tax_is_rounded_down_once_per_rate_not_per_line() -> None:
    made = invoice([line(5) for _ in range(10)])
    assert made.tax == 5  # per line it would be 10 × floor(0.5) = 0
    assert [e.to_dict() for e in made.tax_summary] == [{"rate": 10, "taxable": 50, "tax": 5}]


def test_two_rates_get_one_summary_entry_each_and_credits_go_to_the_highest_first() -> None:
    made = invoice([line(1000, rate=10), line(1000, rate=8)], [balance_credit_line(1500)])
    assert [e.to_dict() for e in made.tax_summary] == [
        {"rate": 10, "taxable": 0, "tax": 0},
        {"rate": 8, "taxable": 500, "tax": 40},
    ]
    assert made.total == 2000 - 1500 + 40


def test_a_total_of_zero_is_an_invoice_with_no_charge() -> None:
    made = invoice([line(1000)], [balance_credit_line(1000)])
    assert made.total == 0
    assert made.payment.to_dict() == {"status": "no_charge"}
    with pytest.raises(ValueError, match="does not fit"):
        invoice([line(1000)], [balance_credit_line(1000)], InvoicePayment.card("visa", "4242"))
    with pytest.raises(ValueError, match="does not fit"):
        invoice([line(1000)], [], InvoicePayment.no_charge())


def test_an_invoice_that_cannot_be_right_is_refused() -> None:
    with pytest.raises(ValueError, match="exceed the subtotal"):
        invoice([line(1000)], [balance_credit_line(1001)])
    wrong = InvoiceLine(
        description="x", description_ja="x", quantity=2, unit_price=10, months=1, amount=21,
        tax_rate=10,
    )  # fmt: skip
    with pytest.raises(ValueError, match="quantity × unit price × months"):
        invoice([wrong])
    with pytest.raises(ValueError, match="not an invoice number"):
        build_invoice(
            number="SS-26-1",
            issued_at=T0,
            kind="upgrade",
            charge_key="k",
            currency="JPY",
            issuer=ISSUER,
            billing_contact=CONTACT,
            lines=[line(1)],
            credits=[],
            payment=InvoicePayment.card("visa", "4242"),
        )


def test_credits_beyond_the_subtotal_stay_off_this_invoice() -> None:
    credits = applied_service_credits(
        [
            {"service": "crm", "remaining_days": 300, "amount": 8000},
            {"service": "desk", "remaining_days": 200, "amount": 5000},
            {"service": "survey", "remaining_days": 10, "amount": 100},
        ],
        10000,
        {"crm": "CRM", "desk": "Desk"},
    )
    assert [(c.service, c.amount) for c in credits] == [("crm", 8000), ("desk", 2000)]


amounts = st.integers(min_value=0, max_value=10_000_000)
rates = st.sampled_from([0, 8, 10])
lines_strategy = st.lists(
    st.builds(line, st.integers(min_value=0, max_value=100_000), rates, st.integers(1, 50)),
    min_size=1,
    max_size=8,
)


@given(lines=lines_strategy, credit_shares=st.lists(amounts, max_size=4), data=st.data())
def test_every_yen_is_on_the_invoice_once_and_tax_is_once_per_rate(
    lines: list[InvoiceLine], credit_shares: list[int], data: st.DataObject
) -> None:
    subtotal = sum(x.amount for x in lines)
    # Credits offered by a charge (service credits and the balance), at most the subtotal.
    offered = [
        {"service": f"s{i}", "remaining_days": 1, "amount": share}
        for i, share in enumerate(credit_shares)
    ]
    applied = min(sum(credit_shares), subtotal)
    credits = list(applied_service_credits(offered, applied, {}))
    balance = data.draw(st.integers(min_value=0, max_value=subtotal - applied))
    if balance:
        credits.append(balance_credit_line(balance))
    made = invoice(lines, credits)

    assert made.subtotal == subtotal
    assert made.credit == applied + balance == sum(c.amount for c in made.credits)
    assert sum(c.amount for c in made.credits if c.source == CREDIT_FROM_BALANCE) == balance
    assert sum(e.taxable for e in made.tax_summary) == subtotal - made.credit
    assert len({e.rate for e in made.tax_summary}) == len(made.tax_summary)
    for entry in made.tax_summary:
        assert entry.tax == entry.taxable * entry.rate // 100
    assert made.tax == sum(e.tax for e in made.tax_summary)
    assert made.total == made.subtotal - made.credit + made.tax
    assert (made.payment.status == "no_charge") == (made.total == 0)
    assert Invoice.from_dict(made.to_dict()) == made
