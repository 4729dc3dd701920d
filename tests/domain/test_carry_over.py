"""The carry-over rule of SPEC §4: who may start the trial (and act on the bundle)
without silently losing the settings and data of a purchased service."""

from __future__ import annotations

from datetime import date

import pytest

from domain.carry_over import may_act_on_bundle, who_may_start_trial
from domain.errors import NotAllowed
from domain.organization import Organization
from tests.domain.builders import (
    CATALOG,
    OWNER,
    T0,
    Plan,
    begin_checkout,
    days,
    organization_with,
)

TODAY = T0.date()


def running(service: str, super_admin: str, *admins: str) -> Plan:
    return Plan(service, super_admin=super_admin, admins=admins)


def ended(service: str, super_admin: str, *admins: str) -> Plan:
    """A plan whose half-open period [start, end) ended today."""
    return Plan(
        service, super_admin=super_admin, admins=admins, start=date(2025, 11, 26), end=TODAY
    )


def free_service_admins(org: Organization, service: str, super_admin: str, *admins: str) -> None:
    """Admins of a service the organization uses without a paid plan."""
    org.change_service_admins(
        service=service,
        super_admin=super_admin,
        admins=list(admins),
        by="operator",
        by_operator=True,
        at=T0,
        catalog=CATALOG,
    )


# -- P empty -------------------------------------------------------------------


def test_with_nothing_purchased_the_owner_may_start_the_trial() -> None:
    org = organization_with()
    decision = who_may_start_trial(org.facts, OWNER, TODAY)
    assert decision.allowed
    assert decision.purchased == ()


@pytest.mark.parametrize("user", ["u-free-super", "u-free-admin"])
def test_with_nothing_purchased_an_admin_of_any_service_may_start_the_trial(user: str) -> None:
    org = organization_with()
    free_service_admins(org, "survey", "u-free-super", "u-free-admin")
    assert who_may_start_trial(org.facts, user, TODAY).allowed


def test_with_nothing_purchased_a_stranger_is_refused() -> None:
    org = organization_with()
    free_service_admins(org, "survey", "u-free-super")
    decision = who_may_start_trial(org.facts, "u-stranger", TODAY)
    assert not decision.allowed
    with pytest.raises(NotAllowed) as refused:
        org.start_trial(by="u-stranger", at=T0, catalog=CATALOG)
    assert refused.value.code == "trial_initiator_cannot_carry_over"
    assert refused.value.details == {"missing_admin_rights": [], "super_admins": {}}


def test_an_admin_of_a_plan_that_has_ended_still_counts_as_an_admin_when_p_is_empty() -> None:
    org = organization_with(ended("desk", "u-bob"))
    assert who_may_start_trial(org.facts, "u-bob", TODAY).allowed


# -- one purchased service -------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("u-alice", True), ("u-carol", True), ("u-owner", False), ("u-stranger", False)],
    ids=["its super admin", "its admin", "the owner without rights", "a stranger"],
)
def test_with_one_purchased_service_only_its_admins_may_start_the_trial(
    user: str, allowed: bool
) -> None:
    org = organization_with(running("crm", "u-alice", "u-carol"))
    decision = who_may_start_trial(org.facts, user, TODAY)
    assert decision.allowed is allowed
    assert decision.purchased == ("crm",)
    assert decision.missing_admin_rights == (() if allowed else ("crm",))
    assert decision.super_admins == {"crm": "u-alice"}


# -- several purchased services ----------------------------------------------------


def several() -> Organization:
    return organization_with(
        running("crm", "u-alice", "u-carol", "u-dave"),
        running("desk", "u-bob", "u-carol", "u-alice"),
        running("projects", "u-erin", "u-carol"),
    )


def test_a_super_admin_of_only_some_services_is_refused_with_what_to_fix() -> None:
    org = several()
    with pytest.raises(NotAllowed) as refused:
        org.start_trial(by="u-bob", at=T0, catalog=CATALOG)
    assert refused.value.code == "trial_initiator_cannot_carry_over"
    assert refused.value.details == {
        "missing_admin_rights": ["crm", "projects"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob", "projects": "u-erin"},
    }
    assert org.version == 4  # nothing was recorded


def test_the_refusal_lists_every_service_when_the_user_has_no_rights_at_all() -> None:
    decision = who_may_start_trial(several().facts, "u-stranger", TODAY)
    assert not decision.allowed
    assert decision.missing_admin_rights == ("crm", "desk", "projects")


def test_a_user_with_admin_rights_on_every_purchased_service_may_start_the_trial() -> None:
    org = several()
    assert who_may_start_trial(org.facts, "u-carol", TODAY).allowed
    org.start_trial(by="u-carol", at=T0, catalog=CATALOG)
    assert org.facts.trial is not None
    assert org.facts.trial.carried_over == ("crm", "desk", "projects")


def test_a_user_who_is_super_admin_of_every_purchased_service_may_start_the_trial() -> None:
    org = organization_with(running("crm", "u-alice"), running("desk", "u-alice"))
    assert who_may_start_trial(org.facts, "u-alice", TODAY).allowed


def test_mixing_super_admin_and_admin_rights_across_services_is_enough() -> None:
    # u-alice is super admin of crm and an admin of desk.
    org = organization_with(running("crm", "u-alice"), running("desk", "u-bob", "u-alice"))
    assert who_may_start_trial(org.facts, "u-alice", TODAY).allowed


def test_unifying_the_super_admin_turns_a_refusal_into_a_start() -> None:
    org = organization_with(running("crm", "u-alice"), running("desk", "u-bob"))
    assert not who_may_start_trial(org.facts, "u-alice", TODAY).allowed
    org.change_service_admins(
        service="desk",
        super_admin="u-alice",
        admins=["u-bob"],
        by="u-bob",
        by_operator=False,
        at=T0,
        catalog=CATALOG,
    )
    org.start_trial(by="u-alice", at=T0, catalog=CATALOG)
    assert org.facts.bundle_state == "trial"


# -- expired standalone periods do not count in P -------------------------------------


def test_a_plan_that_ended_today_is_not_in_p() -> None:
    org = organization_with(running("crm", "u-alice"), ended("desk", "u-bob"))
    decision = who_may_start_trial(org.facts, "u-alice", TODAY)
    assert decision.allowed
    assert decision.purchased == ("crm",)
    assert decision.super_admins == {"crm": "u-alice"}


def test_a_plan_still_counts_on_its_last_day() -> None:
    last_day = Plan("desk", super_admin="u-bob", start=date(2025, 11, 27), end=TODAY + days(1))
    org = organization_with(running("crm", "u-alice"), last_day)
    decision = who_may_start_trial(org.facts, "u-alice", TODAY)
    assert decision.purchased == ("crm", "desk")
    assert decision.missing_admin_rights == ("desk",)


def test_a_plan_counts_from_its_first_day() -> None:
    starts_today = Plan("desk", super_admin="u-bob", start=TODAY, end=date(2027, 11, 26))
    org = organization_with(starts_today)
    assert who_may_start_trial(org.facts, "u-bob", TODAY).purchased == ("desk",)


def test_when_every_plan_has_ended_the_owner_may_start_the_trial_again() -> None:
    org = organization_with(ended("crm", "u-alice"))
    assert who_may_start_trial(org.facts, OWNER, TODAY).allowed


# -- the same rule for extend, cancel and upgrade ------------------------------------------


def trial_started_by_carol_then_admins_changed() -> Organization:
    """Carol starts the trial, then loses her rights on desk."""
    org = several()
    org.start_trial(by="u-carol", at=T0, catalog=CATALOG)
    org.change_service_admins(
        service="desk",
        super_admin="u-bob",
        admins=[],
        by="operator",
        by_operator=True,
        at=T0,
        catalog=CATALOG,
    )
    return org


def test_the_trial_initiator_may_always_act_on_the_bundle() -> None:
    org = trial_started_by_carol_then_admins_changed()
    assert not who_may_start_trial(org.facts, "u-carol", TODAY).allowed
    assert may_act_on_bundle(org.facts, "u-carol", TODAY).allowed


def test_the_trial_initiator_may_extend_after_losing_rights() -> None:
    org = trial_started_by_carol_then_admins_changed()
    org.extend_trial(by="u-carol", at=T0 + days(25), catalog=CATALOG)
    assert org.facts.trial is not None
    assert org.facts.trial.extensions_used == 1


def test_the_trial_initiator_may_cancel_after_losing_rights() -> None:
    org = trial_started_by_carol_then_admins_changed()
    org.cancel_trial(by="u-carol", at=T0 + days(1), catalog=CATALOG)
    assert org.facts.bundle_state == "cancelled"


def test_the_trial_initiator_may_upgrade_after_losing_rights() -> None:
    org = trial_started_by_carol_then_admins_changed()
    begin_checkout(org, by="u-carol", at=T0 + days(1))
    assert org.facts.pending_checkout is not None


@pytest.mark.parametrize(
    "act",
    [
        lambda org: org.extend_trial(by="u-bob", at=T0 + days(25), catalog=CATALOG),
        lambda org: org.cancel_trial(by="u-bob", at=T0 + days(1), catalog=CATALOG),
        lambda org: begin_checkout(org, by="u-bob", at=T0 + days(1)),
    ],
    ids=["extend", "cancel", "upgrade"],
)
def test_anyone_else_without_rights_on_every_purchased_service_may_not_act_on_the_bundle(
    act: object,
) -> None:
    org = several()
    org.start_trial(by="u-carol", at=T0, catalog=CATALOG)
    version = org.version
    with pytest.raises(NotAllowed) as refused:
        act(org)  # type: ignore[operator]
    assert refused.value.code == "bundle_action_not_allowed"
    assert refused.value.details == {
        "missing_admin_rights": ["crm", "projects"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob", "projects": "u-erin"},
    }
    assert org.version == version


def test_another_user_with_rights_on_every_purchased_service_may_act_on_the_bundle() -> None:
    org = organization_with(running("crm", "u-alice", "u-carol"))
    org.start_trial(by="u-alice", at=T0, catalog=CATALOG)
    org.cancel_trial(by="u-carol", at=T0 + days(1), catalog=CATALOG)
    assert org.facts.trial is not None
    assert org.facts.bundle_state == "cancelled"


def test_buying_without_a_trial_follows_the_carry_over_rule() -> None:
    org = organization_with(running("crm", "u-alice"))
    with pytest.raises(NotAllowed) as refused:
        begin_checkout(org, by=OWNER, at=T0)
    assert refused.value.code == "bundle_action_not_allowed"
    begin_checkout(org, by="u-alice", at=T0)
    assert org.facts.pending_checkout is not None
