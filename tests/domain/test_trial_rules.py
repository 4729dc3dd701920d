"""The trial's rules (SPEC §4): one trial per life, the extension window and
limit, the new end, cancellation and the expiry sweep."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain import events as ev
from domain.errors import NotAllowed, NotFound, StateConflict
from domain.organization import Organization
from tests.domain.builders import (
    CATALOG,
    T0,
    Plan,
    begin_checkout,
    days,
    organization_with,
    record,
    upgrade,
)

ALICE = "u-alice"
TRIAL_END = T0 + days(30)


def trial_started() -> Organization:
    """crm (usable in the bundle) and desk are purchased; Alice administers both."""
    org = organization_with(Plan("crm", super_admin=ALICE), Plan("desk", super_admin=ALICE))
    org.start_trial(by=ALICE, at=T0, catalog=CATALOG)
    return org


def new_events(org: Organization) -> list[object]:
    return list(org.collect_events())


def conflict_code(act: object) -> str:
    with pytest.raises(StateConflict) as refused:
        act()  # type: ignore[operator]
    return refused.value.code


# -- starting ----------------------------------------------------------------------


def test_a_started_trial_records_what_carries_over_and_what_is_on_trial() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE), Plan("desk", super_admin=ALICE))
    org.collect_events()
    org.start_trial(by=ALICE, at=T0, catalog=CATALOG)
    (started,) = new_events(org)
    assert isinstance(started, ev.TrialStarted)
    assert started.by == ALICE
    assert started.ends_at == "2026-12-26T09:00:00+00:00"
    assert started.carried_over == ["crm", "desk"]
    assert started.usable_in_bundle == ["crm"]
    assert started.standalone_only == ["desk"]
    assert started.trial_services == [
        "salesiq",
        "campaigns",
        "projects",
        "social",
        "survey",
        "analytics",
    ]


def test_an_organization_gets_one_trial_even_after_cancelling_it() -> None:
    org = trial_started()
    org.cancel_trial(by=ALICE, at=T0 + days(1), catalog=CATALOG)
    code = conflict_code(lambda: org.start_trial(by=ALICE, at=T0 + days(2), catalog=CATALOG))
    assert code == "trial_already_used"


@pytest.mark.parametrize("moment", [T0 + days(1), TRIAL_END + days(1)], ids=["during", "expired"])
def test_a_second_trial_is_refused_during_or_after_the_first(moment: datetime) -> None:
    org = trial_started()
    code = conflict_code(lambda: org.start_trial(by=ALICE, at=moment, catalog=CATALOG))
    assert code == "trial_already_used"


def test_a_trial_is_refused_once_the_bundle_is_active() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE))
    upgrade(org, by=ALICE, at=T0)
    code = conflict_code(lambda: org.start_trial(by=ALICE, at=T0 + days(1), catalog=CATALOG))
    assert code == "bundle_already_active"


def test_an_active_bundle_reached_through_a_trial_also_answers_bundle_already_active() -> None:
    org = trial_started()
    upgrade(org, by=ALICE, at=T0 + days(1))
    code = conflict_code(lambda: org.start_trial(by=ALICE, at=T0 + days(2), catalog=CATALOG))
    assert code == "bundle_already_active"


# -- extension window and limit ---------------------------------------------------------


def test_an_extension_more_than_seven_days_before_the_end_is_refused() -> None:
    org = trial_started()
    too_early = TRIAL_END - days(7) - timedelta(seconds=1)
    with pytest.raises(StateConflict) as refused:
        org.extend_trial(by=ALICE, at=too_early, catalog=CATALOG)
    assert refused.value.code == "trial_not_extendable"
    assert refused.value.details == {
        "trial_ends_at": "2026-12-26T09:00:00+00:00",
        "extensions_used": 0,
    }


def test_an_extension_is_allowed_exactly_seven_days_before_the_end() -> None:
    org = trial_started()
    org.extend_trial(by=ALICE, at=TRIAL_END - days(7), catalog=CATALOG)
    assert org.facts.trial is not None
    assert org.facts.trial.extensions_used == 1


@pytest.mark.parametrize("recorded", [True, False], ids=["expiry recorded", "expired by time"])
def test_an_extension_is_allowed_after_the_trial_has_expired(recorded: bool) -> None:
    org = trial_started()
    if recorded:
        org.expire_trial(at=TRIAL_END)
    org.extend_trial(by=ALICE, at=TRIAL_END + days(40), catalog=CATALOG)
    assert org.facts.bundle_state == "trial"


def test_a_second_extension_is_refused() -> None:
    org = trial_started()
    org.extend_trial(by=ALICE, at=TRIAL_END - days(1), catalog=CATALOG)
    with pytest.raises(StateConflict) as refused:
        org.extend_trial(by=ALICE, at=TRIAL_END + days(10), catalog=CATALOG)
    assert refused.value.code == "trial_extension_limit_reached"
    assert refused.value.details["extensions_used"] == 1


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (organization_with, "trial_not_extendable"),
        (
            lambda: _cancelled(trial_started()),
            "trial_not_extendable",
        ),
        (lambda: _active(trial_started()), "bundle_already_active"),
    ],
    ids=["no trial", "cancelled", "active"],
)
def test_there_is_nothing_to_extend_outside_a_trial(make: object, code: str) -> None:
    org: Organization = make()  # type: ignore[operator]
    assert (
        conflict_code(lambda: org.extend_trial(by=ALICE, at=T0 + days(29), catalog=CATALOG)) == code
    )


def _cancelled(org: Organization) -> Organization:
    org.cancel_trial(by=ALICE, at=T0 + days(1), catalog=CATALOG)
    return org


def _active(org: Organization) -> Organization:
    upgrade(org, by=ALICE, at=T0 + days(1))
    return org


# -- the new end: the later of (end, now) + 15 days ----------------------------------------------


def test_an_extension_before_the_end_adds_fifteen_days_to_the_end() -> None:
    org = trial_started()
    org.collect_events()
    org.extend_trial(by=ALICE, at=TRIAL_END - days(3), catalog=CATALOG)
    (extended,) = new_events(org)
    assert isinstance(extended, ev.TrialExtended)
    assert extended.previous_end == "2026-12-26T09:00:00+00:00"
    assert extended.new_end == "2027-01-10T09:00:00+00:00"
    assert extended.extension_number == 1
    assert extended.by == ALICE


def test_an_extension_after_the_end_adds_fifteen_days_to_the_moment_it_is_granted() -> None:
    org = trial_started()
    granted = TRIAL_END + days(4) + timedelta(hours=5)
    org.collect_events()
    org.extend_trial(by=ALICE, at=granted, catalog=CATALOG)
    (extended,) = new_events(org)
    assert isinstance(extended, ev.TrialExtended)
    assert extended.previous_end == "2026-12-26T09:00:00+00:00"
    assert extended.new_end == "2027-01-14T14:00:00+00:00"
    assert org.facts.trial is not None
    assert org.facts.trial.ends_at == granted + days(15)


# -- cancelling ---------------------------------------------------------------------------------


def test_cancelling_during_the_trial_is_a_user_request_downgrading_services_not_purchased() -> None:
    org = trial_started()
    org.collect_events()
    org.cancel_trial(by=ALICE, at=T0 + days(5), catalog=CATALOG)
    cancelled, *downgrades = new_events(org)
    assert isinstance(cancelled, ev.TrialCancelled)
    assert (cancelled.by, cancelled.reason) == (ALICE, "user_request")
    assert all(isinstance(d, ev.ServiceDowngradedToFree) for d in downgrades)
    assert [d.service for d in downgrades] == [  # type: ignore[attr-defined]
        "salesiq",
        "campaigns",
        "projects",
        "social",
        "survey",
        "analytics",
    ]
    assert org.facts.downgraded_to_free == (
        "salesiq",
        "campaigns",
        "projects",
        "social",
        "survey",
        "analytics",
    )


@pytest.mark.parametrize("recorded", [True, False], ids=["expiry recorded", "expired by time"])
def test_cancelling_after_the_trial_expired_gives_the_reason_after_expiry(recorded: bool) -> None:
    org = trial_started()
    if recorded:
        org.expire_trial(at=TRIAL_END)
    org.collect_events()
    org.cancel_trial(by=ALICE, at=TRIAL_END + days(2), catalog=CATALOG)
    cancelled = new_events(org)[0]
    assert isinstance(cancelled, ev.TrialCancelled)
    assert cancelled.reason == "after_expiry"


def test_a_plan_that_ended_during_the_trial_is_downgraded_on_cancel() -> None:
    short = Plan("desk", super_admin=ALICE, start=T0.date() - days(20), end=T0.date() + days(10))
    org = organization_with(Plan("crm", super_admin=ALICE), short)
    org.start_trial(by=ALICE, at=T0, catalog=CATALOG)
    org.cancel_trial(by=ALICE, at=T0 + days(12), catalog=CATALOG)
    assert "desk" in org.facts.downgraded_to_free
    assert "crm" not in org.facts.downgraded_to_free


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (organization_with, "trial_not_cancellable"),
        (lambda: _cancelled(trial_started()), "trial_not_cancellable"),
        (lambda: _active(trial_started()), "bundle_already_active"),
    ],
    ids=["no trial", "already cancelled", "active"],
)
def test_there_is_nothing_to_cancel_outside_a_trial(make: object, code: str) -> None:
    org: Organization = make()  # type: ignore[operator]
    assert (
        conflict_code(lambda: org.cancel_trial(by=ALICE, at=T0 + days(3), catalog=CATALOG)) == code
    )


# -- the expiry sweep ----------------------------------------------------------------------------


def test_expiry_is_not_recorded_before_the_end() -> None:
    org = trial_started()
    assert org.expire_trial(at=TRIAL_END - timedelta(seconds=1)) is False
    assert org.facts.bundle_state == "trial"


def test_expiry_is_recorded_once_at_or_after_the_end() -> None:
    org = trial_started()
    org.collect_events()
    assert org.expire_trial(at=TRIAL_END) is True
    assert org.expire_trial(at=TRIAL_END + days(1)) is False
    (expired,) = new_events(org)
    assert isinstance(expired, ev.TrialExpired)
    assert expired.ends_at == "2026-12-26T09:00:00+00:00"
    assert org.facts.bundle_state == "trial_expired"


@pytest.mark.parametrize(
    "make",
    [
        organization_with,
        lambda: _cancelled(trial_started()),
        lambda: _active(trial_started()),
    ],
    ids=["no trial", "cancelled", "active"],
)
def test_expiry_does_nothing_outside_a_trial(make: object) -> None:
    org: Organization = make()  # type: ignore[operator]
    assert org.expire_trial(at=TRIAL_END + days(100)) is False


def test_an_extended_trial_expires_again_at_its_new_end() -> None:
    org = trial_started()
    org.expire_trial(at=TRIAL_END)
    org.extend_trial(by=ALICE, at=TRIAL_END + days(1), catalog=CATALOG)
    assert org.expire_trial(at=TRIAL_END + days(16) - timedelta(seconds=1)) is False
    assert org.expire_trial(at=TRIAL_END + days(16)) is True


# -- admins and plans ----------------------------------------------------------------------------


def test_only_the_super_admin_or_an_operator_may_change_a_services_admins() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE, admins=("u-carol",)))
    with pytest.raises(NotAllowed) as refused:
        org.change_service_admins(
            service="crm",
            super_admin="u-carol",
            admins=[],
            by="u-carol",
            by_operator=False,
            at=T0,
            catalog=CATALOG,
        )
    assert refused.value.code == "not_service_super_admin"
    assert refused.value.details == {"service": "crm", "super_admin": ALICE}


def test_an_unknown_service_is_not_found() -> None:
    org = organization_with()
    with pytest.raises(NotFound) as refused:
        org.record_standalone_subscription(
            service="mail",
            seats=1,
            billing_period="monthly",
            amount_paid=1000,
            period_start=T0.date(),
            period_end=T0.date() + days(30),
            super_admin=ALICE,
            admins=[],
            by=None,
            at=T0,
            catalog=CATALOG,
        )
    assert refused.value.code == "unknown_service"


def test_recording_a_standalone_plan_while_the_bundle_is_active_is_refused() -> None:
    org = _active(trial_started())
    with pytest.raises(StateConflict) as refused:
        org.record_standalone_subscription(
            service="survey",
            seats=1,
            billing_period="monthly",
            amount_paid=1000,
            period_start=T0.date(),
            period_end=T0.date() + days(30),
            super_admin=ALICE,
            admins=[],
            by=None,
            at=T0 + days(2),
            catalog=CATALOG,
        )
    assert refused.value.code == "bundle_already_active"


# -- a pending checkout freezes the bundle ------------------------------------------


def test_a_pending_checkout_refuses_extending_and_cancelling_the_trial() -> None:
    org = trial_started()
    in_window = TRIAL_END - days(2)
    begin_checkout(org, by=ALICE, at=in_window)
    assert conflict_code(lambda: org.extend_trial(by=ALICE, at=in_window, catalog=CATALOG)) == (
        "checkout_in_progress"
    )
    assert conflict_code(lambda: org.cancel_trial(by=ALICE, at=in_window, catalog=CATALOG)) == (
        "checkout_in_progress"
    )


def test_a_pending_checkout_refuses_starting_a_trial() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE))
    begin_checkout(org, by=ALICE, at=T0)
    assert conflict_code(lambda: org.start_trial(by=ALICE, at=T0, catalog=CATALOG)) == (
        "checkout_in_progress"
    )


def test_permanent_refusals_are_reported_before_a_pending_checkout() -> None:
    org = trial_started()
    org.extend_trial(by=ALICE, at=TRIAL_END - days(1), catalog=CATALOG)
    later = TRIAL_END + days(1)
    begin_checkout(org, by=ALICE, at=later)
    assert conflict_code(lambda: org.extend_trial(by=ALICE, at=later, catalog=CATALOG)) == (
        "trial_extension_limit_reached"
    )
    assert conflict_code(lambda: org.start_trial(by=ALICE, at=later, catalog=CATALOG)) == (
        "trial_already_used"
    )


def test_a_pending_checkout_refuses_recording_a_standalone_plan() -> None:
    """Money paid for a plan recorded now would be neither credited nor terminated."""
    org = trial_started()
    begin_checkout(org, by=ALICE, at=T0 + days(3))
    code = conflict_code(lambda: record(org, Plan("survey", super_admin=ALICE), at=T0 + days(3)))
    assert code == "checkout_in_progress"
    assert org.facts.admins_of("survey") is None


def test_a_pending_checkout_refuses_changing_a_services_admins() -> None:
    org = trial_started()
    begin_checkout(org, by=ALICE, at=T0 + days(3))
    code = conflict_code(
        lambda: org.change_service_admins(
            service="desk",
            super_admin="u-mallory",
            admins=[],
            by="ops-1",
            by_operator=True,
            at=T0 + days(3),
            catalog=CATALOG,
        )
    )
    assert code == "checkout_in_progress"
    assert org.facts.admins_of("desk").super_admin == ALICE  # type: ignore[union-attr]


def test_who_may_change_the_admins_is_reported_before_a_pending_checkout() -> None:
    org = trial_started()
    begin_checkout(org, by=ALICE, at=T0 + days(3))
    with pytest.raises(NotAllowed) as refused:
        org.change_service_admins(
            service="desk",
            super_admin="u-bob",
            admins=[],
            by="u-bob",
            by_operator=False,
            at=T0 + days(3),
            catalog=CATALOG,
        )
    assert refused.value.code == "not_service_super_admin"


def test_once_the_checkout_fails_plans_and_admins_can_be_recorded_again() -> None:
    org = trial_started()
    begin_checkout(org, by=ALICE, at=T0 + days(3))
    org.fail_checkout(checkout_id="chk_0001", reason="card_declined", at=T0 + days(3))
    record(org, Plan("survey", super_admin=ALICE), at=T0 + days(3))
    org.change_service_admins(
        service="desk",
        super_admin="u-bob",
        admins=[],
        by="ops-1",
        by_operator=True,
        at=T0 + days(3),
        catalog=CATALOG,
    )
    assert org.facts.admins_of("survey").super_admin == ALICE  # type: ignore[union-attr]
    assert org.facts.admins_of("desk").super_admin == "u-bob"  # type: ignore[union-attr]


def test_once_the_checkout_fails_the_trial_can_be_cancelled_again() -> None:
    org = trial_started()
    begin_checkout(org, by=ALICE, at=T0 + days(3))
    org.fail_checkout(checkout_id="chk_0001", reason="card_declined", at=T0 + days(3))
    org.cancel_trial(by=ALICE, at=T0 + days(3), catalog=CATALOG)
    assert org.facts.bundle_state == "cancelled"
