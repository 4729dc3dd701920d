"""The upgrade checkout's records (SPEC §5): begin before any charge, then the
purchase and every terminated standalone contract at once, or the failure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from domain.errors import NotAllowed, StateConflict
from domain.organization import Organization
from domain.quote import UpgradeRequest
from tests.application.helpers import (
    CONTACT,
    PAYMENT,
    SPEC_REQUEST,
    event_types,
    organization_in_trial,
    record_desk,
)


def begin(
    app: SuiteSubscriptions,
    org: UUID,
    *,
    checkout_id: str = "chk_1",
    expected_total: int | None = None,
    request: UpgradeRequest = SPEC_REQUEST,
    by: str = "u-alice",
) -> Any:
    total = app.quote(org, request).total if expected_total is None else expected_total
    return app.begin_upgrade_checkout(
        org,
        by=by,
        request=request,
        billing_contact=CONTACT,
        expected_total=total,
        idempotency_key="idem-1",
        checkout_id=checkout_id,
    )


def with_desk_in_trial(app: SuiteSubscriptions) -> UUID:
    org = organization_in_trial(app)
    record_desk(app, org, super_admin="u-alice")
    return org


def test_beginning_a_checkout_records_the_accepted_quote(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    result, checkout_id, quote = begin(app, org)
    assert checkout_id == "chk_1"
    assert result.version == 4
    assert quote.total == 782_236
    pending = app.facts(org).pending_checkout
    assert pending is not None
    assert (pending.checkout_id, pending.by, pending.idempotency_key) == (
        "chk_1",
        "u-alice",
        "idem-1",
    )
    assert pending.quote == quote
    assert pending.billing_contact == CONTACT
    assert pending.add_ons == (("storage-10gb", 2),)
    assert event_types(app, org)[-1] == "UpgradeCheckoutStarted"


def test_a_checkout_gets_a_fresh_id_when_none_is_given(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    total = app.quote(org, SPEC_REQUEST).total
    _, checkout_id, _ = app.begin_upgrade_checkout(
        org, by="u-alice", request=SPEC_REQUEST, billing_contact=CONTACT, expected_total=total
    )
    assert checkout_id.startswith("chk_")
    assert len(checkout_id) > 10


def test_completing_records_the_purchase_and_every_termination_in_one_save(
    app: SuiteSubscriptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = with_desk_in_trial(app)
    begin(app, org)
    saves: list[list[str]] = []
    original_save = app.save

    def counting_save(*aggregates: Any, **kwargs: Any) -> Any:
        saves.append(
            [
                type(e).__name__
                for a in aggregates
                if isinstance(a, Organization)
                for e in a.pending_events
            ]
        )
        return original_save(*aggregates, **kwargs)

    monkeypatch.setattr(app, "save", counting_save)
    result = app.complete_upgrade_checkout(org, checkout_id="chk_1", payment=PAYMENT)

    assert saves == [
        ["UpgradePurchased", "StandaloneContractTerminated", "StandaloneContractTerminated"]
    ]
    assert result.version == 8
    page = app.organization_events(org)["events"]
    assert page[-1]["position"] == result.position
    positions = [e["position"] for e in page[-3:]]
    assert positions == list(range(positions[0], positions[0] + 3))


def test_the_purchase_records_exactly_the_accepted_quote_and_the_payment(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = with_desk_in_trial(app)
    _, _, quote = begin(app, org)
    clock.advance(timedelta(minutes=2))  # the gateway took a while
    app.complete_upgrade_checkout(org, checkout_id="chk_1", payment=PAYMENT)

    events = app.organization_events(org)["events"]
    purchased, crm, desk = events[-3:]
    assert purchased["type"] == "UpgradePurchased"
    accepted = quote.to_dict()
    for key in ("currency", "billing_period", "seats", "lines", "subtotal", "credits", "credit"):
        assert purchased["data"][key] == accepted[key]
    for key in ("tax", "total", "unapplied_credit", "contract_start", "contract_end"):
        assert purchased["data"][key] == accepted[key]
    assert purchased["data"]["payment"] == PAYMENT
    assert purchased["data"]["billing_contact"] == CONTACT
    assert purchased["data"]["add_ons"] == [{"code": "storage-10gb", "quantity": 2}]
    assert purchased["at"] == "2026-11-26T09:02:00+00:00"
    assert [(e["type"], e["data"]["service"]) for e in (crm, desk)] == [
        ("StandaloneContractTerminated", "crm"),
        ("StandaloneContractTerminated", "desk"),
    ]
    assert crm["data"] == {
        "checkout_id": "chk_1",
        "service": "crm",
        "remaining_days": 100,
        "amount_credited": 32_876,
        "credit_applied": 32_876,
        "credit_to_balance": 0,
        "periods": [
            {
                "amount_paid": 120_000,
                "remaining_days": 100,
                "total_days": 365,
                "amount": 32_876,
                "period_start": "2026-03-06",
                "period_end": "2027-03-06",
            }
        ],
    }


def test_after_the_purchase_the_bundle_is_active_and_the_plans_ended(
    app: SuiteSubscriptions,
) -> None:
    org = with_desk_in_trial(app)
    begin(app, org)
    app.complete_upgrade_checkout(org, checkout_id="chk_1", payment=PAYMENT)
    facts = app.facts(org)
    assert facts.bundle_state == "active"
    assert facts.pending_checkout is None
    assert facts.purchased_services(facts.registered_at.date()) == ()
    assert facts.contract is not None
    assert (facts.contract.checkout_id, facts.contract.charge_id) == ("chk_1", "ch_test_1")
    view = app.access(org)
    assert view["bundle"]["state"] == "active"
    assert view["bundle"]["available_actions"] == []
    assert {s["contract"] for s in view["services"]} == {"bundle"}
    with pytest.raises(StateConflict) as refused:
        app.quote(org, SPEC_REQUEST)
    assert refused.value.code == "bundle_already_active"


def test_completing_the_same_checkout_twice_records_it_once(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    begin(app, org)
    first = app.complete_upgrade_checkout(org, checkout_id="chk_1", payment=PAYMENT)
    again = app.complete_upgrade_checkout(org, checkout_id="chk_1", payment=PAYMENT)
    assert first.changed
    assert (again.changed, again.version, again.position) == (False, first.version, None)
    assert event_types(app, org).count("UpgradePurchased") == 1


def test_completing_a_checkout_that_is_not_pending_is_a_conflict(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    with pytest.raises(StateConflict) as refused:
        app.complete_upgrade_checkout(org, checkout_id="chk_nope", payment=PAYMENT)
    assert refused.value.code == "checkout_not_pending"
    assert refused.value.details == {"checkout_id": "chk_nope"}


def test_a_failed_checkout_clears_the_way_for_another(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    begin(app, org)
    failed = app.fail_upgrade_checkout(org, checkout_id="chk_1", reason="card_declined")
    assert failed.changed
    assert app.facts(org).pending_checkout is None
    assert "upgrade" in app.access(org)["bundle"]["available_actions"]
    failed_event = app.organization_events(org)["events"][-1]
    assert failed_event["type"] == "UpgradeCheckoutFailed"
    assert failed_event["data"] == {"checkout_id": "chk_1", "reason": "card_declined"}

    again = app.fail_upgrade_checkout(org, checkout_id="chk_1", reason="card_declined")
    assert not again.changed
    begin(app, org, checkout_id="chk_2")
    assert app.facts(org).pending_checkout.checkout_id == "chk_2"  # type: ignore[union-attr]


def test_a_failure_reported_for_another_checkout_changes_nothing(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    begin(app, org)
    assert not app.fail_upgrade_checkout(org, checkout_id="chk_other", reason="x").changed
    assert app.facts(org).pending_checkout is not None


def test_a_different_expected_total_is_refused_with_the_fresh_quote(
    app: SuiteSubscriptions,
) -> None:
    org = organization_in_trial(app)
    with pytest.raises(StateConflict) as refused:
        begin(app, org, expected_total=700_000)
    assert refused.value.code == "quote_changed"
    assert refused.value.details == {
        "expected_total": 700_000,
        "quote": app.quote(org, SPEC_REQUEST).to_dict(),
    }
    assert refused.value.details["quote"]["total"] == 782_236
    assert app.facts(org).pending_checkout is None


def test_a_quote_shown_yesterday_changes_as_credit_runs_out(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = organization_in_trial(app)
    yesterdays_total = app.quote(org, SPEC_REQUEST).total
    clock.advance(timedelta(days=1))
    with pytest.raises(StateConflict) as refused:
        begin(app, org, expected_total=yesterdays_total)
    fresh = refused.value.details["quote"]
    assert fresh["credits"][0]["remaining_days"] == 99
    assert fresh["total"] > yesterdays_total


def test_a_second_checkout_while_one_is_pending_is_refused(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    begin(app, org)
    with pytest.raises(StateConflict) as refused:
        begin(app, org, checkout_id="chk_2")
    assert refused.value.code == "checkout_in_progress"
    assert app.facts(org).pending_checkout.checkout_id == "chk_1"  # type: ignore[union-attr]


def test_a_user_without_rights_may_not_begin_a_checkout(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    with pytest.raises(NotAllowed) as refused:
        begin(app, org, by="u-stranger")
    assert refused.value.code == "bundle_action_not_allowed"


def test_an_organization_may_buy_without_a_trial(app: SuiteSubscriptions) -> None:
    org = UUID(
        app.register_organization(name="A", country="JP", owner_user_id="u-o").organization_id
    )
    begin(app, org, by="u-o", request=UpgradeRequest("monthly", 2))
    app.complete_upgrade_checkout(org, checkout_id="chk_1", payment=PAYMENT)
    assert app.access(org)["bundle"]["state"] == "active"
    assert event_types(app, org) == [
        "OrganizationRegistered",
        "UpgradeCheckoutStarted",
        "UpgradePurchased",
    ]


def test_a_pending_checkout_refuses_a_standalone_plan_and_an_admins_change(
    app: SuiteSubscriptions,
) -> None:
    """What was quoted is what is bought: a plan recorded now would be paid for
    and neither credited nor terminated (SPEC §11)."""
    org = organization_in_trial(app)
    begin(app, org)
    version = app.get_organization(org).version

    with pytest.raises(StateConflict) as plan_refused:
        record_desk(app, org, super_admin="u-alice")
    with pytest.raises(StateConflict) as admins_refused:
        app.change_service_admins(
            org, service="crm", super_admin="u-bob", admins=[], by="ops-1", by_operator=True
        )

    assert plan_refused.value.code == "checkout_in_progress"
    assert admins_refused.value.code == "checkout_in_progress"
    assert app.get_organization(org).version == version
    app.fail_upgrade_checkout(org, checkout_id="chk_1", reason="card_declined")
    record_desk(app, org, super_admin="u-alice")
    assert app.facts(org).admins_of("desk") is not None
