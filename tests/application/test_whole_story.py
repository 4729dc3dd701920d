"""An organization's whole story, day by day under a manual clock, on every store:
register → subscriptions → refused trial → unified admin → trial → extension
window → expiry → extension → quote → checkout → purchase."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from domain.errors import NotAllowed, StateConflict
from tests.application.helpers import (
    CONTACT,
    PAYMENT,
    SPEC_REQUEST,
    event_types,
    record_crm,
    record_desk,
    register,
)


def test_an_organization_lives_through_trial_expiry_extension_and_purchase(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    start = clock.now()

    def day(n: int) -> None:
        """Move to day ``n`` of the story (day 0 is 2026-11-26 09:00 UTC)."""
        clock.set(start + timedelta(days=n))

    org: UUID = register(app)
    record_crm(app, org)  # Alice is super admin of crm
    record_desk(app, org)  # Bob is super admin of desk
    assert app.access(org)["bundle"]["available_actions"] == ["start_trial", "upgrade"]

    # Alice may not start: desk's data would not carry over.
    with pytest.raises(NotAllowed) as refused:
        app.start_trial(org, by="u-alice")
    assert refused.value.details["super_admins"] == {"crm": "u-alice", "desk": "u-bob"}

    # Bob unifies the super admin and Alice starts the trial.
    app.change_service_admins(
        org, service="desk", super_admin="u-alice", admins=["u-bob"], by="u-bob", by_operator=False
    )
    app.start_trial(org, by="u-alice")
    view = app.access(org)
    assert (view["bundle"]["state"], view["bundle"]["days_left"]) == ("trial", 30)
    by_code = {s["code"]: s for s in view["services"]}
    assert by_code["crm"]["access"] == "bundle"
    assert by_code["desk"]["note"] == "available in the bundle after upgrade"
    assert by_code["survey"]["edition"] == "trial"

    day(10)
    assert app.access(org)["bundle"]["days_left"] == 20
    assert app.expire_trial(org).changed is False

    # desk's monthly plan ended on day 14: desk now runs on the trial edition.
    day(15)
    desk = next(s for s in app.access(org)["services"] if s["code"] == "desk")
    assert (desk["edition"], desk["access"]) == ("trial", "bundle")

    day(22)
    with pytest.raises(StateConflict):
        app.extend_trial(org, by="u-alice")
    day(23)
    assert app.access(org)["bundle"]["available_actions"] == [
        "extend_trial",
        "cancel_trial",
        "upgrade",
    ]

    # Day 30: expired at once in the view, before the sweep records it.
    day(30)
    view = app.access(org)
    assert (view["bundle"]["state"], view["bundle"]["days_left"]) == ("trial_expired", 0)
    assert app.facts(org).bundle_state == "trial"
    assert app.expire_trial(org).changed
    assert app.expire_trial(org).changed is False

    # Day 32: extended 15 days from now, since the trial had already ended.
    day(32)
    app.extend_trial(org, by="u-alice")
    bundle = app.access(org)["bundle"]
    assert bundle["trial_ends_at"] == "2027-01-12T09:00:00+00:00"
    assert (bundle["state"], bundle["days_left"], bundle["extensions_used"]) == ("trial", 15, 1)
    assert bundle["available_actions"] == ["cancel_trial", "upgrade"]

    # Day 40: quote, then buy.
    day(40)
    quote = app.quote(org, SPEC_REQUEST)
    assert [(c.service, c.remaining_days) for c in quote.credits] == [("crm", 60)]
    _, checkout_id, _ = app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=SPEC_REQUEST,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key="idem-story",
    )
    # A pending checkout freezes the bundle: no action until it completes or fails.
    assert app.access(org)["bundle"]["available_actions"] == []
    app.complete_upgrade_checkout(org, checkout_id=checkout_id, payment=PAYMENT)

    view = app.access(org)
    assert view["bundle"]["state"] == "active"
    assert all(s["edition"] == "paid" and s["access"] == "bundle" for s in view["services"])
    assert event_types(app, org) == [
        "OrganizationRegistered",
        "StandaloneSubscriptionRecorded",
        "StandaloneSubscriptionRecorded",
        "ServiceAdminsChanged",
        "TrialStarted",
        "TrialExpired",
        "TrialExtended",
        "UpgradeCheckoutStarted",
        "UpgradePurchased",
        "StandaloneContractTerminated",
    ]
    assert [e["at"][:10] for e in app.organization_events(org)["events"]][-5:] == [
        "2026-12-26",
        "2026-12-28",
        "2027-01-05",
        "2027-01-05",
        "2027-01-05",
    ]


def test_a_trial_cancelled_after_expiry_downgrades_what_was_not_bought(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = register(app)
    record_crm(app, org)
    app.start_trial(org, by="u-alice")
    clock.advance(timedelta(days=31))
    app.cancel_trial(org, by="u-alice")
    facts = app.facts(org)
    assert (facts.bundle_state, facts.cancel_reason) == ("cancelled", "after_expiry")
    view = app.access(org)
    assert view["bundle"]["available_actions"] == ["upgrade"]
    survey = next(s for s in view["services"] if s["code"] == "survey")
    assert survey == {
        "code": "survey",
        "edition": "free",
        "contract": "none",
        "access": "standalone",
        "url": f"https://survey.suite.example/{org}",
    }
