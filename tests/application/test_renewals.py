"""The contract's life on every store (SPEC §11): renewals, dunning, the card on
file, cancellation at period end, the credit balance, and reconcile finishing
a renewal a crash left between charge and record."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.payments import SandboxGateway
from application.renewals import RenewalReport, renew_due_contracts
from application.upgrade import PurchaseRequest
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.facts import BundleState, ContractTerms
from domain.quote import UpgradeRequest, add_calendar_months
from tests.application.helpers import CONTACT, event_types, register

MONTHLY_FOUR = UpgradeRequest("monthly", 4, ())


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


def buy(
    services: Services,
    token: str = "tok_visa",
    request: UpgradeRequest = MONTHLY_FOUR,
    org: UUID | None = None,
) -> UUID:
    org = org or register(services.app)
    total = services.app.quote(org, request).total
    services.checkouts.purchase(
        org,
        by="u-owner",
        purchase=PurchaseRequest(request, CONTACT, total, token),
        idempotency_key=None,
    )
    return org


def terms(services: Services, org: UUID) -> ContractTerms:
    contract = services.app.facts(org).contract
    assert contract is not None
    return contract.terms


def charges(services: Services) -> int:
    gateway = services.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway.count_charges()


def events_of(services: Services, org: UUID, kind: str) -> list[dict[str, Any]]:
    found = services.app.organization_events(org, limit=1000)["events"]
    return [e["data"] for e in found if e["type"] == kind]


def test_a_contract_renews_at_its_period_end_charging_the_card_on_file(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    first = terms(services, org)
    assert first.payment_method.reference is not None
    assert first.payment_method.reference.startswith("pm_")
    clock.set(first.current_period_end - timedelta(seconds=1))
    assert renew_due_contracts(services).recorded == 0
    clock.set(first.current_period_end)
    report = renew_due_contracts(services)
    assert report.renewed == [str(org)]
    assert charges(services) == 2
    (renewed,) = events_of(services, org, "BundleRenewed")
    assert renewed["period_start"] == first.current_period_end.isoformat()
    assert renewed["total"] == 33_000
    assert renewed["payment"]["payment_method"] == first.payment_method.reference
    invoice = renewed["invoice"]
    assert invoice["number"].startswith(f"SS-{first.current_period_end.year}-")
    assert invoice["charge_key"] == renewed["renewal_id"]
    assert invoice["total"] == 33_000
    assert event_types(services.app, org)[-2:] == ["RenewalChargeStarted", "BundleRenewed"]
    # nothing more is due until the new period ends
    assert renew_due_contracts(services).recorded == 0
    assert charges(services) == 2
    view = services.read_model.access(org)
    assert (
        view["bundle"]["contract"]["current_period_start"] == first.current_period_end.isoformat()
    )


def test_dunning_retries_on_schedule_and_ends_the_contract_after_the_last_failure(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services, token="tok_visa_renewalDeclined")
    end = terms(services, org).current_period_end
    for offset in (0, 1, 3):
        clock.set(end + timedelta(days=offset))
        assert renew_due_contracts(services).failed == [str(org)]
        assert services.app.facts(org).bundle_state == BundleState.PAST_DUE
        view = services.read_model.access(org)
        assert {s["access"] for s in view["services"]} == {"bundle"}
        assert view["bundle"]["contract"]["past_due_since"] == end.isoformat()
    assert terms(services, org).next_payment_attempt_at == end + timedelta(days=7)
    clock.set(end + timedelta(days=6))
    assert renew_due_contracts(services).recorded == 0
    clock.set(end + timedelta(days=7))
    report = renew_due_contracts(services)
    assert report.failed == [str(org)]
    assert report.ended == [str(org)]
    failures = events_of(services, org, "RenewalPaymentFailed")
    assert [f["reason"] for f in failures] == ["card_declined"] * 4
    assert [f["attempt"] for f in failures] == [1, 2, 3, 4]
    assert failures[-1]["next_attempt_at"] is None
    (ended,) = events_of(services, org, "BundleEnded")
    assert ended["reason"] == "payment_failed"
    assert len(events_of(services, org, "ServiceDowngradedToFree")) == len(
        services.catalog.service_codes
    )
    view = services.read_model.access(org)
    assert view["bundle"]["state"] == "ended"
    assert {(s["edition"], s["access"]) for s in view["services"]} == {("free", "standalone")}
    assert charges(services) == 1  # only the upgrade was ever charged


def test_a_new_card_while_past_due_pays_at_once_and_the_period_starts_at_the_old_end(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services, token="tok_visa_renewalDeclined")
    end = terms(services, org).current_period_end
    clock.set(end)
    renew_due_contracts(services)
    clock.set(end + timedelta(days=2))
    outcome = services.renewals.change_payment_method(org, by="u-owner", payment_token="tok_visa")
    assert outcome["renewal"] == "renewed"
    after = terms(services, org)
    assert services.app.facts(org).bundle_state == BundleState.ACTIVE
    assert after.current_period_start == end
    assert after.current_period_end == add_calendar_months(
        services.app.facts(org).contract.anchor,  # type: ignore[union-attr]
        2,
    )
    assert after.past_due_since is None
    assert after.payment_method.brand == "visa"
    assert event_types(services.app, org)[-3:] == [
        "PaymentMethodChanged",
        "RenewalChargeStarted",
        "BundleRenewed",
    ]


def test_a_cancelled_contract_ends_at_its_period_end_without_a_charge(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    end = terms(services, org).current_period_end
    services.app.cancel_contract(org, by="u-owner")
    assert services.read_model.access(org)["bundle"]["contract"]["cancel_at_period_end"] is True
    clock.set(end)
    report = renew_due_contracts(services)
    assert report.ended == [str(org)]
    assert charges(services) == 1
    (ended,) = events_of(services, org, "BundleEnded")
    assert ended["reason"] == "cancelled"
    # bought again from ended: no trial, a new contract
    clock.advance(timedelta(days=3))
    buy(services, org=org)
    assert services.app.facts(org).bundle_state == BundleState.ACTIVE


def test_a_withdrawn_cancellation_renews_as_usual(services: Services, clock: ManualClock) -> None:
    org = buy(services)
    services.app.cancel_contract(org, by="u-owner")
    services.app.withdraw_contract_cancellation(org, by="u-owner")
    clock.set(terms(services, org).current_period_end)
    assert renew_due_contracts(services).renewed == [str(org)]


def test_the_upgrades_unapplied_credit_pays_renewals_first_and_a_zero_total_charges_nothing(
    services: Services, clock: ManualClock
) -> None:
    org = register(services.app)
    services.app.record_standalone_subscription(
        org,
        service="crm",
        seats=1,
        billing_period="yearly",
        amount_paid=1_000_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-owner",
        admins=[],
    )
    request = UpgradeRequest("monthly", 1, ())
    quote = services.app.quote(org, request)
    assert quote.total == 0
    buy(services, request=request, org=org)
    balance = terms(services, org).credit_balance
    assert balance == quote.unapplied_credit > 7_500
    assert charges(services) == 0
    clock.set(terms(services, org).current_period_end)
    assert renew_due_contracts(services).renewed == [str(org)]
    (renewed,) = events_of(services, org, "BundleRenewed")
    assert (renewed["credit_applied"], renewed["tax"], renewed["total"]) == (7_500, 0, 0)
    assert renewed["invoice"]["payment"] == {"status": "no_charge"}
    assert terms(services, org).credit_balance == balance - 7_500
    assert charges(services) == 0


def test_a_renewal_with_something_to_pay_and_no_card_on_file_is_past_due(
    services: Services, clock: ManualClock
) -> None:
    org = register(services.app)
    services.app.record_standalone_subscription(
        org,
        service="crm",
        seats=1,
        billing_period="yearly",
        amount_paid=90_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-owner",
        admins=[],
    )
    buy(services, request=UpgradeRequest("monthly", 3, ()), org=org)
    assert terms(services, org).payment_method.reference is None
    clock.set(terms(services, org).current_period_end)
    assert renew_due_contracts(services).failed == [str(org)]
    (failed,) = events_of(services, org, "RenewalPaymentFailed")
    assert failed["reason"] == "no_payment_method"


def test_reconcile_finishes_a_renewal_left_between_charge_and_record(
    services: Services, clock: ManualClock
) -> None:
    org = buy(services)
    end = terms(services, org).current_period_end
    clock.set(end)
    # A worker records the intent and charges, then dies before recording the outcome.
    _result, renewal_id, charge = services.app.begin_renewal(org)
    assert charge is not None
    method = terms(services, org).payment_method.reference
    assert method is not None
    services.gateway.charge(renewal_id, charge.total, charge.currency, method, "crashed")
    assert charges(services) == 2
    # Within the grace period the intent is left alone: its charge may be in flight.
    assert renew_due_contracts(services).pending == []
    assert services.renewals.reconcile().renewed == []
    clock.advance(timedelta(minutes=11))
    report = services.renewals.reconcile()
    assert report.renewed == [str(org)]
    assert charges(services) == 2  # the gateway answered the first charge; nothing new
    (renewed,) = events_of(services, org, "BundleRenewed")
    assert renewed["renewal_id"] == renewal_id
    assert renew_due_contracts(services).recorded == 0


def test_sweeps_racing_on_the_same_due_contracts_charge_each_once(
    shared_store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    """Two "workers" (each its own Services on one database) settle the same due
    batch at the same moment: each contract is renewed, and charged, once."""
    workers = [build_services(shared_store_url, clock=clock, catalog=catalog) for _ in range(2)]
    try:
        first = workers[0]
        orgs = [buy(first) for _ in range(6)]
        clock.set(terms(first, orgs[0]).current_period_end + timedelta(seconds=5))
        first.read_model.catch_up()
        due = [i for i, _at in first.read_model.views.contracts_due(now=clock.now(), limit=10)]
        assert sorted(due) == sorted(str(o) for o in orgs)
        barrier = threading.Barrier(len(workers))
        reports: list[RenewalReport] = [RenewalReport() for _ in workers]

        def settle(index: int) -> None:
            barrier.wait()
            reports[index] = workers[index].renewals.settle(due)

        threads = [threading.Thread(target=settle, args=(i,)) for i in range(len(workers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        renewed = [o for report in reports for o in report.renewed]
        assert sorted(renewed) == sorted(str(o) for o in orgs)
        for org in orgs:
            assert len(events_of(first, org, "BundleRenewed")) == 1
            assert len(events_of(first, org, "RenewalChargeStarted")) == 1
        assert charges(first) == 2 * len(orgs)
        assert first.renewals.sweep().recorded == 0
    finally:
        for worker in workers:
            worker.close()
