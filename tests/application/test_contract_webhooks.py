"""The contract's life (SPEC §11) announced and delivered (SPEC §12): a real
receiver on 127.0.0.1 verifies every request with ``standardwebhooks`` and
hears bundle.renewed, invoice.issued, bundle.cancellation_scheduled and
_withdrawn, bundle.payment_failed, bundle.ended, service.downgraded_to_free
and access.changed, in log order per organization."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.projections.read_model import ViewSettings
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.contract_change import WantedChange
from domain.events import UpgradePurchased
from domain.integration_events import EVENT_TYPES
from tests.domain.builders import CONTACT, PAYMENT, days, monthly_request
from tests.receivers import Receiver, receiver

SETTINGS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)
START = datetime(2028, 1, 31, 9, 0, tzinfo=UTC)
CARD = {**PAYMENT, "payment_method": "pm_0001"}


@pytest.fixture
def services(
    store_url: str, clock: ManualClock, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Services]:
    monkeypatch.setenv("SUITE_WEBHOOKS_ALLOW_PRIVATE", "1")
    built = build_services(store_url, clock=clock, catalog=catalog, view_settings=SETTINGS)
    yield built
    built.close()


@pytest.fixture
def hooks(services: Services) -> Iterator[Receiver]:
    with receiver([]) as running:
        created = services.webhooks.endpoints.create(
            url=running.url, events=["*"], description="contract story"
        )
        running.secrets.append(created["secret"])
        yield running


def buy_monthly(services: Services, name: str, checkout_id: str) -> UUID:
    app = services.app
    org = UUID(
        app.register_organization(name=name, country="JP", owner_user_id="u-owner").organization_id
    )
    request = monthly_request(4)
    app.begin_upgrade_checkout(
        org,
        by="u-owner",
        request=request,
        billing_contact=CONTACT,
        expected_total=app.quote(org, request).total,
        idempotency_key=f"idem-{checkout_id}",
        checkout_id=checkout_id,
    )
    app.complete_upgrade_checkout(org, checkout_id=checkout_id, payment=CARD)
    return org


def purchase_types(services: Services, org: UUID) -> list[str]:
    """What the purchase announces: its own type, ``invoice.issued`` if the
    recorded UpgradePurchased carries an invoice, and the access change."""
    app = services.app
    stored = (app.mapper.to_domain_event(s) for s in app.recorder.select_events(org))
    purchase = next(e for e in stored if isinstance(e, UpgradePurchased))
    invoice = ["invoice.issued"] if purchase.issued_invoice is not None else []
    return ["bundle.purchased", *invoice, "access.changed"]


def fail_renewal(services: Services, org: UUID, renewal_id: str) -> None:
    _result, _renewal, charge = services.app.begin_renewal(org, renewal_id=renewal_id)
    assert charge is not None, f"no renewal was due at {services.clock.now()}"
    services.app.fail_renewal(org, renewal_id=renewal_id, reason="card_declined")


def delivered(services: Services, hooks: Receiver, org: UUID) -> list[dict[str, Any]]:
    services.webhooks.run_once()
    assert all(r.verified for r in hooks.received)
    return [e for e in hooks.envelopes() if e["organization_id"] == str(org)]


def test_a_contracts_life_reaches_a_receiver_signed_in_log_order(
    services: Services, clock: ManualClock, hooks: Receiver
) -> None:
    clock.set(START)
    org = buy_monthly(services, "Gamma", "chk_0201")
    clock.advance(days(3))
    services.app.change_payment_method(
        org, by="u-owner", gateway="sandbox", payment_method="pm_0002", brand="mastercard",
        last4="4444",
    )  # fmt: skip
    clock.set(datetime(2028, 2, 29, 9, 0, tzinfo=UTC))
    services.app.begin_renewal(org, renewal_id="ren_0001")
    renewed = services.app.complete_renewal(
        org,
        renewal_id="ren_0001",
        payment={**PAYMENT, "charge_id": "ch_0002", "payment_method": "pm_0002"},
        invoice_number="SS-2028-000001",
        issued_at=clock.now(),
    )
    clock.advance(days(1))
    services.app.cancel_contract(org, by="u-owner")
    clock.advance(days(1))
    services.app.withdraw_contract_cancellation(org, by="u-owner")
    clock.set(datetime(2028, 3, 31, 9, 0, tzinfo=UTC))
    fail_renewal(services, org, "ren_0002")
    clock.advance(days(2))
    services.app.cancel_contract(org, by="u-owner")  # past due: it ends at once

    envelopes = delivered(services, hooks, org)
    kinds = [e["type"] for e in envelopes]
    # The purchase announces its invoice too once the upgrade records one.
    purchase = purchase_types(services, org)
    assert kinds[: len(purchase)] == purchase
    del envelopes[1 : len(purchase) - 1]  # the rest reads the same either way
    kinds = [e["type"] for e in envelopes]
    # The card change and the renewal's intent announce nothing; then, in log order:
    assert kinds[2:8] == [
        "bundle.renewed",
        "invoice.issued",
        "bundle.cancellation_scheduled",
        "bundle.cancellation_withdrawn",
        "bundle.payment_failed",
        "bundle.ended",
    ]
    services_in_bundle = len(services.catalog.service_codes)
    # The end takes access away at once (access.changed at the end's position),
    # then one downgrade per service is recorded.
    assert kinds[8:] == ["access.changed"] + ["service.downgraded_to_free"] * services_in_bundle
    assert [e["position"] for e in envelopes] == sorted(e["position"] for e in envelopes)
    by_type = {e["type"]: e for e in envelopes}

    renewal = by_type["bundle.renewed"]["data"]
    assert renewal["renewal_id"] == "ren_0001"
    assert (renewal["period_start"], renewal["period_end"]) == (
        "2028-02-29T09:00:00+00:00",
        "2028-03-31T09:00:00+00:00",
    )
    assert (renewal["subtotal"], renewal["tax"], renewal["total"]) == (30000, 3000, 33000)
    assert renewal["payment"] == {"brand": "visa", "last4": "4242"}
    assert renewal["invoice_number"] == "SS-2028-000001"
    assert "payment_method" not in renewal["payment"]  # the gateway's reference stays inside
    invoice = by_type["invoice.issued"]
    assert invoice["position"] == by_type["bundle.renewed"]["position"] == renewed.position
    assert invoice["data"]["number"] == "SS-2028-000001"
    assert invoice["data"]["total"] == 33000
    assert invoice["data"]["tax_summary"] == [{"rate": 10, "taxable": 30000, "tax": 3000}]
    assert invoice["data"]["issuer"]["registration_number"].startswith("T")
    assert by_type["bundle.cancellation_scheduled"]["data"] == {
        "by": "u-owner",
        "effective_at": "2028-03-31T09:00:00+00:00",
    }
    assert by_type["bundle.cancellation_withdrawn"]["data"] == {"by": "u-owner"}
    failed = by_type["bundle.payment_failed"]["data"]
    assert (failed["renewal_id"], failed["attempt"], failed["reason"]) == (
        "ren_0002",
        1,
        "card_declined",
    )
    assert failed["next_attempt_at"] == "2028-04-01T09:00:00+00:00"
    assert failed["final"] is False
    assert by_type["bundle.ended"]["data"] == {"reason": "cancelled", "by": "u-owner"}
    downgraded = {e["data"]["service"] for e in envelopes[9:]}
    assert downgraded == set(services.catalog.service_codes)
    fell_at = envelopes[8]
    assert fell_at["position"] == by_type["bundle.ended"]["position"]
    fell = fell_at["data"]
    assert (fell["previous_bundle_state"], fell["bundle_state"]) == ("past_due", "ended")
    assert len(fell["services"]) == services_in_bundle
    for row in fell["services"]:
        assert (row["edition"], row["contract"], row["access"]) == ("free", "none", "standalone")
        assert row["previous"]["edition"] == "paid"
        assert row["previous"]["contract"] == "bundle"


def test_the_last_failed_attempt_ends_the_contract_and_says_it_was_final(
    services: Services, clock: ManualClock, hooks: Receiver
) -> None:
    clock.set(START)
    org = buy_monthly(services, "Delta", "chk_0301")
    end = datetime(2028, 2, 29, 9, 0, tzinfo=UTC)
    retry_days = services.catalog.bundle.dunning_retry_days
    for n, moment in enumerate([end, *(end + days(d) for d in retry_days)]):
        clock.set(moment)
        fail_renewal(services, org, f"ren_{n:04d}")

    envelopes = delivered(services, hooks, org)
    failures = [e["data"] for e in envelopes if e["type"] == "bundle.payment_failed"]
    assert [f["attempt"] for f in failures] == list(range(1, len(retry_days) + 2))
    assert [f["final"] for f in failures] == [False] * len(retry_days) + [True]
    assert failures[-1]["next_attempt_at"] is None
    ended = [e for e in envelopes if e["type"] == "bundle.ended"]
    assert [e["data"] for e in ended] == [{"reason": "payment_failed", "by": None}]
    # Past due kept access (no access.changed then); the end takes it away.
    changes = [e for e in envelopes if e["type"] == "access.changed"]
    assert [c["data"]["bundle_state"] for c in changes] == ["active", "ended"]
    assert changes[-1]["position"] == ended[0]["position"]


def test_mid_term_changes_reach_a_receiver_as_bundle_changed_with_their_invoices(
    services: Services, clock: ManualClock, hooks: Receiver
) -> None:
    clock.set(START)
    org = buy_monthly(services, "Epsilon", "chk_0401")
    app = services.app
    clock.advance(days(10))
    more_seats = WantedChange(seats=6)
    app.begin_plan_change(
        org,
        by="u-owner",
        wanted=more_seats,
        expected_total=app.quote_plan_change(org, more_seats).total,
        idempotency_key="idem-0402",
        change_id="chg_0001",
    )
    now = app.complete_plan_change(
        org,
        change_id="chg_0001",
        payment={**CARD, "charge_id": "ch_0401"},
        invoice_number="SS-2028-000101",
        issued_at=clock.now(),
    )
    clock.advance(days(1))
    app.begin_plan_change(
        org,
        by="u-owner",
        wanted=WantedChange(seats=3),
        expected_total=0,
        idempotency_key="idem-0403",
        change_id="chg_0002",
    )

    envelopes = delivered(services, hooks, org)
    kinds = [e["type"] for e in envelopes]
    purchase = purchase_types(services, org)
    assert kinds == [*purchase, "bundle.changed", "invoice.issued", "bundle.changed"]
    at_once, its_invoice, scheduled = envelopes[len(purchase) :]
    assert at_once["position"] == its_invoice["position"] == now.position
    assert at_once["data"]["takes_effect"] == "now"
    assert at_once["data"]["seats"] == 6
    assert at_once["data"]["invoice_number"] == its_invoice["data"]["number"] == "SS-2028-000101"
    assert at_once["data"]["total"] == its_invoice["data"]["total"] > 0
    assert at_once["data"]["payment"] == {"brand": "visa", "last4": "4242"}
    assert scheduled["data"]["takes_effect"] == "at_renewal"
    assert scheduled["data"]["takes_effect_at"] == "2028-02-29T09:00:00+00:00"
    assert scheduled["data"]["scheduled_change"]["seats"] == 3
    assert scheduled["data"]["replaces"] is None


def test_every_contract_type_is_known_to_subscriptions_and_the_feed() -> None:
    for name in (
        "bundle.renewed",
        "invoice.issued",
        "bundle.payment_failed",
        "bundle.cancellation_scheduled",
        "bundle.cancellation_withdrawn",
        "bundle.ended",
        "bundle.renewal_upcoming",
        "bundle.changed",
    ):
        assert name in EVENT_TYPES
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))
