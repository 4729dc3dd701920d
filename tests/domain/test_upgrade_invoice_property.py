"""Money on the upgrade's invoice, over any plans and any request (hypothesis).

Through the aggregate's own path (checkout → purchase with its invoice):

- what the invoice totals is what the quote charged (the gateway's amount);
- every yen of the lines is on it once (subtotal), every yen credited for a
  standalone plan is either on this invoice (a credit line of that plan) or
  in ``unapplied_credit`` (the credit balance, for a later invoice) — never
  both, never lost;
- total = subtotal − credit + tax, tax rounded down once per rate on the
  amount after credits (never per line);
- the payment is the card exactly when something was charged, else "no charge".
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.events import StandaloneContractTerminated, UpgradePurchased
from domain.invoice import CREDIT_FROM_SERVICE
from domain.quote import AddOnRequest, UpgradeRequest
from tests.domain.builders import (
    CATALOG,
    CONTACT,
    PAYMENT,
    T0,
    Plan,
    organization_with,
)

SERVICES = ("crm", "salesiq", "desk", "projects")

plans = st.lists(
    st.builds(
        lambda service, paid, started, length: Plan(
            service=service,
            super_admin="u-alice",
            seats=1,
            amount_paid=paid,
            start=T0.date() - timedelta(days=started),
            end=T0.date() - timedelta(days=started) + timedelta(days=length),
        ),
        st.sampled_from(SERVICES),
        st.integers(0, 5_000_000),
        st.integers(0, 400),
        st.integers(1, 800),
    ),
    max_size=4,
    unique_by=lambda plan: plan.service,
)
requests = st.builds(
    lambda period, seats, add_ons: UpgradeRequest(period, seats, tuple(add_ons)),
    st.sampled_from(("monthly", "yearly")),
    st.integers(1, 50),
    st.lists(
        st.builds(
            AddOnRequest,
            st.sampled_from([a.code for a in CATALOG.bundle.add_ons]),
            st.integers(1, 20),
        ),
        max_size=3,
        unique_by=lambda add_on: add_on.code,
    ),
)


@settings(max_examples=200, deadline=None)
@given(plans=plans, request=requests)
def test_every_yen_charged_or_credited_is_accounted_for_once(
    plans: list[Plan], request: UpgradeRequest
) -> None:
    org = organization_with(*plans, owner="u-alice")
    running = org.facts.running_subscriptions(T0.date())
    seats = max([request.seats, *(plan.seats for plan in plans)])
    request = UpgradeRequest(request.billing_period, seats, request.add_ons)
    quote = org.quote(request, at=T0, catalog=CATALOG)
    org.begin_checkout(
        checkout_id="chk_p",
        by="u-alice",
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key=None,
        at=T0,
        catalog=CATALOG,
    )
    org.complete_checkout(
        checkout_id="chk_p",
        payment=PAYMENT,
        at=T0,
        invoice_number="SS-2026-000001",
        invoice_issued_at=T0,
        catalog=CATALOG,
    )
    events = org.collect_events()
    (purchased,) = [e for e in events if isinstance(e, UpgradePurchased)]
    invoice = purchased.issued_invoice
    assert invoice is not None

    # Charged: the invoice's total is what the gateway was asked for.
    assert invoice["total"] == quote.total == purchased.total
    # Lines: every yen once.
    assert invoice["subtotal"] == sum(line["amount"] for line in invoice["lines"]) == quote.subtotal
    assert [line["amount"] for line in invoice["lines"]] == [line.amount for line in quote.lines]
    # Credits: each plan's credit is on this invoice or in the balance, exactly once.
    credited = {credit.service: credit.amount for credit in quote.credits}
    on_invoice: dict[str, int] = {}
    for credit in invoice["credits"]:
        assert credit["source"] == CREDIT_FROM_SERVICE
        on_invoice[credit["service"]] = on_invoice.get(credit["service"], 0) + credit["amount"]
        assert 0 < credit["amount"] <= credited[credit["service"]]
    assert sum(on_invoice.values()) == invoice["credit"] == quote.credit
    assert invoice["credit"] + quote.unapplied_credit == sum(credited.values())
    assert invoice["credit"] <= invoice["subtotal"]
    # Tax once per rate, rounded down, on what is left after credits.
    rates = {line["tax_rate"] for line in invoice["lines"]}
    assert [entry["rate"] for entry in invoice["tax_summary"]] == sorted(rates, reverse=True)
    for entry in invoice["tax_summary"]:
        assert entry["tax"] == entry["taxable"] * entry["rate"] // 100
    assert sum(entry["taxable"] for entry in invoice["tax_summary"]) == (
        invoice["subtotal"] - invoice["credit"]
    )
    assert invoice["tax"] == sum(entry["tax"] for entry in invoice["tax_summary"])
    assert invoice["total"] == invoice["subtotal"] - invoice["credit"] + invoice["tax"]
    # Paid by card exactly when something was charged.
    expected_payment = (
        {"status": "no_charge"}
        if quote.total == 0
        else {"status": "charged", "brand": "visa", "last4": "4242"}
    )
    assert invoice["payment"] == expected_payment
    # Each credited plan is terminated; only plans running on the upgrade date credit.
    terminated = [e.service for e in events if isinstance(e, StandaloneContractTerminated)]
    assert sorted(terminated) == sorted(credited)
    assert set(credited) <= {s.service for s in running}
    event("a total of 0" if quote.total == 0 else "charged")
    event("credit left for the balance" if quote.unapplied_credit else "all credit applied")
