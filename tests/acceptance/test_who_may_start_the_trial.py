"""SPEC §4 carry-over rule: nobody starts a trial that would silently lose settings and data.

Reference article: the purchased services' super admin starts the trial; with
several purchased services, unify the super admin first, or let a user with
admin rights on every service start it.
"""

from __future__ import annotations

from tests.acceptance.conftest import (
    CRM_YEARLY,
    DESK_MONTHLY,
    Suite,
    plan,
    refused,
    succeeded,
)


def test_a_desk_customer_is_refused_the_trial_until_the_super_admin_is_unified(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)

    details = refused(suite.start_trial(org, "u-alice"), 403, "trial_initiator_cannot_carry_over")
    assert details == {
        "missing_admin_rights": ["desk"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob"},
    }
    assert suite.access(org)["bundle"]["state"] == "none"

    succeeded(suite.change_admins(org, "u-bob", "desk", "u-alice", ["u-bob"]), 200)
    started = succeeded(suite.start_trial(org, "u-alice"), 201)

    assert started["bundle"]["state"] == "trial"
    assert suite.access(org)["bundle"]["state"] == "trial"


def test_eligibility_tells_the_refused_user_what_to_fix_before_they_try(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)

    alice = succeeded(suite.eligibility(org, "u-alice"), 200)
    bob = succeeded(suite.eligibility(org, "u-bob"), 200)

    assert alice["eligible"] is False
    assert alice["missing_admin_rights"] == ["desk"]
    assert alice["super_admins"] == {"crm": "u-alice", "desk": "u-bob"}
    assert alice["carried_over"] == ["crm", "desk"]
    assert bob["eligible"] is False
    assert bob["missing_admin_rights"] == ["crm"]


def test_eligibility_says_yes_once_one_user_is_super_admin_of_every_purchased_service(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)
    succeeded(suite.change_admins(org, "u-bob", "desk", "u-alice", []), 200)

    alice = succeeded(suite.eligibility(org, "u-alice"), 200)

    assert alice["eligible"] is True
    assert alice["missing_admin_rights"] == []
    assert alice["carried_over"] == ["crm", "desk"]


def test_a_user_with_admin_rights_on_every_purchased_service_may_start_the_trial(
    suite: Suite,
) -> None:
    crm = {**CRM_YEARLY, "admins": ["u-carol"]}
    desk = {**DESK_MONTHLY, "admins": ["u-carol"]}
    org = suite.organization_with(crm=crm, desk=desk)

    started = succeeded(suite.start_trial(org, "u-carol"), 201)

    assert started["bundle"]["state"] == "trial"


def test_an_admin_of_only_some_purchased_services_is_refused_with_the_services_they_lack(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm={**CRM_YEARLY, "admins": ["u-carol"]}, desk=DESK_MONTHLY)

    details = refused(suite.start_trial(org, "u-carol"), 403, "trial_initiator_cannot_carry_over")

    assert details["missing_admin_rights"] == ["desk"]
    assert details["super_admins"] == {"crm": "u-alice", "desk": "u-bob"}


def test_the_owner_starts_the_trial_when_nothing_is_purchased(suite: Suite) -> None:
    org = suite.register(owner="u-owner")

    assert succeeded(suite.eligibility(org, "u-owner"), 200)["eligible"] is True
    started = succeeded(suite.start_trial(org, "u-owner"), 201)

    assert started["bundle"]["state"] == "trial"


def test_any_admin_of_any_service_starts_the_trial_when_no_plan_is_running(suite: Suite) -> None:
    ended_crm = plan(
        super_admin="u-dave", start="2025-01-01", end="2026-01-01", amount_paid=100_000
    )
    org = suite.organization_with(crm=ended_crm)

    started = succeeded(suite.start_trial(org, "u-dave"), 201)

    assert started["bundle"]["state"] == "trial"


def test_a_stranger_may_not_start_the_trial_even_when_nothing_is_purchased(suite: Suite) -> None:
    org = suite.register(owner="u-owner")

    refused(suite.start_trial(org, "u-stranger"), 403, "trial_initiator_cannot_carry_over")
    assert succeeded(suite.eligibility(org, "u-stranger"), 200)["eligible"] is False


def test_the_same_rule_guards_extend_cancel_and_upgrade_for_other_users(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org, "u-alice"), 201)
    suite.advance_days(25)

    for answer in (
        suite.extend_trial(org, "u-mallory"),
        suite.cancel_trial(org, "u-mallory"),
        suite.upgrade(org, "key-mallory", user="u-mallory"),
    ):
        assert answer.status_code == 403, answer.get_json()
        details = answer.get_json()["error"]["details"]
        assert details["missing_admin_rights"] == ["crm"]
        assert details["super_admins"] == {"crm": "u-alice"}
    assert suite.access(org)["bundle"]["state"] == "trial"


def test_the_user_who_started_the_trial_may_always_decide_even_after_losing_admin_rights(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org, "u-alice"), 201)
    succeeded(suite.change_admins(org, "u-alice", "crm", "u-bob", []), 200)

    cancelled = succeeded(suite.cancel_trial(org, "u-alice"), 200)

    assert cancelled["bundle"]["state"] == "cancelled"


def test_only_that_services_super_admin_or_an_operator_changes_its_admins(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)

    refused_answer = suite.change_admins(org, "u-alice", "desk", "u-alice", [])
    by_operator = suite.client.put(
        f"/v1/organizations/{org}/services/desk/admins",
        json={"super_admin": "u-carol", "admins": []},
        headers=suite.operator(),
    )

    assert refused_answer.status_code == 403
    assert refused_answer.get_json()["error"]["code"]
    succeeded(by_operator, 200)
    assert succeeded(suite.eligibility(org, "u-alice"), 200)["super_admins"]["desk"] == "u-carol"


def test_the_owner_is_refused_once_a_plan_is_running_that_the_owner_does_not_administer(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    details = refused(suite.start_trial(org, "u-owner"), 403, "trial_initiator_cannot_carry_over")

    assert details == {"missing_admin_rights": ["crm"], "super_admins": {"crm": "u-alice"}}


def test_an_admin_of_a_service_never_bought_starts_the_trial_when_nothing_is_purchased(
    suite: Suite,
) -> None:
    org = suite.register(owner="u-owner")
    succeeded(
        suite.client.put(
            f"/v1/organizations/{org}/services/campaigns/admins",
            json={"super_admin": "u-zed", "admins": ["u-yan"]},
            headers=suite.operator(),
        ),
        200,
    )

    assert succeeded(suite.eligibility(org, "u-zed"), 200)["eligible"] is True
    started = succeeded(suite.start_trial(org, "u-yan"), 201)

    assert started["bundle"]["state"] == "trial"
