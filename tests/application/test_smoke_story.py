"""The foundation's whole story, on every store: register → subscriptions →
refused trial → unified admin → trial → expiry → extension → quote."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from domain.errors import NotAllowed
from domain.quote import AddOnRequest, UpgradeRequest


def test_an_organization_lives_its_whole_trial_story(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    registered = app.register_organization(name="Acme", country="JP", owner_user_id="u-owner")
    org = UUID(registered.organization_id)
    app.record_standalone_subscription(
        org,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 1, 1),
        period_end=date(2027, 1, 1),
        super_admin="u-alice",
        admins=[],
    )
    app.record_standalone_subscription(
        org,
        service="desk",
        seats=3,
        billing_period="monthly",
        amount_paid=9_000,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 12, 1),
        super_admin="u-bob",
        admins=[],
    )

    with pytest.raises(NotAllowed) as refused:
        app.start_trial(org, by="u-alice")
    assert refused.value.code == "trial_initiator_cannot_carry_over"
    assert refused.value.details == {
        "missing_admin_rights": ["desk"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob"},
    }

    app.change_service_admins(
        org, service="desk", super_admin="u-alice", admins=["u-bob"], by="u-bob", by_operator=False
    )
    started = app.start_trial(org, by="u-alice")
    assert app.access(org)["bundle"]["state"] == "trial"

    clock.advance(timedelta(days=30))
    assert app.access(org)["bundle"]["state"] == "trial_expired"
    assert app.expire_trial(org).changed

    app.extend_trial(org, by="u-alice")
    view = app.access(org)
    assert view["bundle"]["state"] == "trial"
    assert view["bundle"]["extensions_used"] == 1
    assert view["bundle"]["days_left"] == 15

    quote = app.quote(
        org,
        UpgradeRequest("yearly", 10, (AddOnRequest("storage-10gb", 2),)),
    )
    assert quote.subtotal == 744_000
    assert started.version < view["version"]
