"""SPEC §2 and §4: the 30-day trial, its one extension, its expiry and its cancellation."""

from __future__ import annotations

from tests.acceptance.conftest import (
    CRM_YEARLY,
    DESK_MONTHLY,
    Suite,
    refused,
    standalone_url,
    succeeded,
)


def trial_for_alice(suite: Suite) -> str:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org), 201)
    return org


def test_the_trial_lasts_thirty_days_from_the_moment_it_starts(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    suite.advance(advance_seconds=3_600)

    started = succeeded(suite.start_trial(org), 201)

    assert started["bundle"]["trial_ends_at"] == "2026-12-26T10:00:00+00:00"
    assert started["bundle"]["days_left"] == 30
    trial_started = [e for e in suite.all_events(org) if e["type"] == "TrialStarted"]
    assert trial_started[0]["at"] == "2026-11-26T10:00:00+00:00"
    assert trial_started[0]["data"]["by"] == "u-alice"
    assert trial_started[0]["data"]["ends_at"] == "2026-12-26T10:00:00+00:00"


def test_the_trial_started_event_names_what_is_carried_over_and_where_it_is_used(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk={**DESK_MONTHLY, "super_admin": "u-alice"})
    succeeded(suite.start_trial(org), 201)

    data = next(e for e in suite.all_events(org) if e["type"] == "TrialStarted")["data"]

    assert data["carried_over"] == ["crm", "desk"]
    assert data["usable_in_bundle"] == ["crm"]
    assert data["standalone_only"] == ["desk"]
    assert data["trial_services"] == [
        "salesiq",
        "campaigns",
        "projects",
        "social",
        "survey",
        "analytics",
    ]


def test_an_extension_asked_too_early_is_refused(suite: Suite) -> None:
    org = trial_for_alice(suite)
    suite.advance_days(22)  # eight days before the end

    refused(suite.extend_trial(org), 409, "trial_not_extendable")

    assert suite.access(org)["bundle"]["extensions_used"] == 0


def test_an_extension_from_seven_days_before_the_end_adds_fifteen_days_to_the_end(
    suite: Suite,
) -> None:
    org = trial_for_alice(suite)
    suite.advance_days(23)  # exactly seven days before the end

    extended = succeeded(suite.extend_trial(org), 200)

    assert extended["bundle"]["trial_ends_at"] == "2027-01-10T09:00:00+00:00"
    assert extended["bundle"]["days_left"] == 22
    assert extended["bundle"]["extensions_used"] == 1
    assert extended["bundle"]["available_actions"] == ["cancel_trial", "upgrade"]
    event = next(e for e in suite.all_events(org) if e["type"] == "TrialExtended")
    assert event["data"]["by"] == "u-alice"
    assert event["data"]["previous_end"] == "2026-12-26T09:00:00+00:00"
    assert event["data"]["new_end"] == "2027-01-10T09:00:00+00:00"
    assert event["data"]["extension_number"] == 1


def test_an_extension_after_the_trial_ended_counts_fifteen_days_from_the_moment_it_is_granted(
    suite: Suite,
) -> None:
    org = trial_for_alice(suite)
    suite.advance_days(40)
    assert suite.access(org)["bundle"]["state"] == "trial_expired"

    extended = succeeded(suite.extend_trial(org), 200)

    assert extended["bundle"]["state"] == "trial"
    assert extended["bundle"]["trial_ends_at"] == "2027-01-20T09:00:00+00:00"
    assert extended["bundle"]["days_left"] == 15
    services = suite.services(org)
    assert services["campaigns"]["edition"] == "trial"


def test_only_one_extension_is_granted(suite: Suite) -> None:
    org = trial_for_alice(suite)
    suite.advance_days(25)
    succeeded(suite.extend_trial(org), 200)
    suite.advance_days(15)

    refused(suite.extend_trial(org), 409, "trial_extension_limit_reached")
    suite.advance_days(30)  # the extended trial has expired too
    refused(suite.extend_trial(org), 409, "trial_extension_limit_reached")

    assert suite.access(org)["bundle"]["available_actions"] == ["cancel_trial", "upgrade"]


def test_cancelling_during_the_trial_records_the_users_request_and_frees_unbought_services(
    suite: Suite,
) -> None:
    org = trial_for_alice(suite)

    cancelled = succeeded(suite.cancel_trial(org), 200)

    assert cancelled["bundle"]["state"] == "cancelled"
    events = suite.all_events(org)
    cancel = next(e for e in events if e["type"] == "TrialCancelled")
    assert cancel["data"]["by"] == "u-alice"
    assert cancel["data"]["reason"] == "user_request"
    downgraded = [e["data"]["service"] for e in events if e["type"] == "ServiceDowngradedToFree"]
    assert downgraded == [
        "salesiq",
        "campaigns",
        "desk",
        "projects",
        "social",
        "survey",
        "analytics",
    ]
    services = suite.services(org)
    assert services["desk"]["edition"] == "free"
    assert services["desk"]["url"] == standalone_url("desk", org)
    assert services["crm"]["edition"] == "paid"


def test_cancelling_an_expired_trial_records_it_was_after_expiry(suite: Suite) -> None:
    org = trial_for_alice(suite)
    suite.advance_days(31)

    succeeded(suite.cancel_trial(org), 200)

    cancel = next(e for e in suite.all_events(org) if e["type"] == "TrialCancelled")
    assert cancel["data"]["reason"] == "after_expiry"
    assert suite.access(org)["bundle"]["state"] == "cancelled"


def test_an_organization_gets_one_trial_in_its_life(suite: Suite) -> None:
    org = trial_for_alice(suite)
    refused(suite.start_trial(org), 409, "trial_already_used")
    succeeded(suite.cancel_trial(org), 200)

    refused(suite.start_trial(org), 409, "trial_already_used")
    refused(suite.extend_trial(org), 409, "trial_not_extendable")
    refused(suite.cancel_trial(org), 409, "trial_not_cancellable")
    assert succeeded(suite.eligibility(org, "u-alice"), 200)["eligible"] is False


def test_nothing_but_an_upgrade_is_possible_without_a_trial(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    refused(suite.extend_trial(org), 409, "trial_not_extendable")
    refused(suite.cancel_trial(org), 409, "trial_not_cancellable")


def test_no_trial_once_the_bundle_is_bought(suite: Suite) -> None:
    org = trial_for_alice(suite)
    succeeded(suite.upgrade(org, "buy"), 201)

    refused(suite.start_trial(org), 409, "bundle_already_active")
    refused(suite.extend_trial(org), 409, "bundle_already_active")
    refused(suite.cancel_trial(org), 409, "bundle_already_active")
