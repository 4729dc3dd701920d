"""A whole organization story at known business times, for the audit tool's tests.

``acme``: register → crm and desk plans → trial → (time) trial ends →
expiry recorded → extension → upgrade purchased.
``globex``: register → trial → cancelled during the trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import UUID

from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from domain.quote import UpgradeRequest

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Story:
    acme: UUID
    globex: UUID
    registered_at: datetime
    trial_started_at: datetime
    trial_ends_at: datetime
    expiry_recorded_at: datetime
    extended_at: datetime
    upgraded_at: datetime
    globex_trial_at: datetime
    globex_cancelled_at: datetime
    acme_versions: int


def tell_story(app: SuiteSubscriptions, clock: ManualClock) -> Story:
    registered_at = clock.now()
    acme = UUID(
        app.register_organization(
            name="Acme", country="JP", owner_user_id="u-owner"
        ).organization_id
    )
    app.record_standalone_subscription(
        acme,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 1, 1),
        period_end=date(2027, 6, 1),
        super_admin="u-alice",
        admins=[],
    )
    app.record_standalone_subscription(
        acme,
        service="desk",
        seats=3,
        billing_period="yearly",
        amount_paid=36_000,
        period_start=date(2026, 6, 1),
        period_end=date(2027, 6, 1),
        super_admin="u-bob",
        admins=[],
    )
    app.change_service_admins(
        acme, service="desk", super_admin="u-alice", admins=["u-bob"], by="u-bob", by_operator=False
    )

    clock.advance(HOUR)
    trial_started_at = clock.now()
    app.start_trial(acme, by="u-alice")
    trial_ends_at = trial_started_at + 30 * DAY

    clock.set(trial_ends_at + 2 * HOUR)
    expiry_recorded_at = clock.now()
    app.expire_trial(acme)

    clock.advance(DAY)
    extended_at = clock.now()
    app.extend_trial(acme, by="u-alice")

    clock.advance(5 * DAY)
    upgraded_at = clock.now()
    request = UpgradeRequest("yearly", 10)
    quote = app.quote(acme, request)
    contact = {"company_name": "Acme KK", "country": "JP", "email": "billing@acme.example"}
    _, checkout_id, _ = app.begin_upgrade_checkout(
        acme, by="u-alice", request=request, billing_contact=contact, expected_total=quote.total
    )
    finished = app.complete_upgrade_checkout(
        acme,
        checkout_id=checkout_id,
        payment={"gateway": "sandbox", "charge_id": "ch_1", "brand": "visa", "last4": "4242"},
    )

    clock.advance(DAY)
    globex = UUID(
        app.register_organization(
            name="Globex", country="US", owner_user_id="u-gil"
        ).organization_id
    )
    clock.advance(HOUR)
    globex_trial_at = clock.now()
    app.start_trial(globex, by="u-gil")
    clock.advance(3 * DAY)
    globex_cancelled_at = clock.now()
    app.cancel_trial(globex, by="u-gil")

    return Story(
        acme=acme,
        globex=globex,
        registered_at=registered_at,
        trial_started_at=trial_started_at,
        trial_ends_at=trial_ends_at,
        expiry_recorded_at=expiry_recorded_at,
        extended_at=extended_at,
        upgraded_at=upgraded_at,
        globex_trial_at=globex_trial_at,
        globex_cancelled_at=globex_cancelled_at,
        acme_versions=finished.version,
    )
