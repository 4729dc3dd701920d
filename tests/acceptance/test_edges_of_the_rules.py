"""The SPEC's rules at their edges: plans that end, keys replayed, bodies refused."""

from __future__ import annotations

from tests.acceptance.conftest import (
    CRM_YEARLY,
    DESK_MONTHLY,
    UPGRADE_FIELDS,
    Suite,
    bundle_url,
    plan,
    refused,
    standalone_url,
    succeeded,
)

ALICES_DESK = {**DESK_MONTHLY, "super_admin": "u-alice"}  # ends 2026-12-01, five days after START


def test_a_plan_that_ends_during_the_trial_moves_its_service_into_the_trial_edition(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=ALICES_DESK)
    succeeded(suite.start_trial(org), 201)
    assert suite.services(org)["desk"]["url"] == standalone_url("desk", org)

    suite.advance_days(5)  # 2026-12-01 09:00: Desk's period has ended
    desk = suite.services(org)["desk"]

    assert (desk["edition"], desk["contract"], desk["access"], desk["url"]) == (
        "trial",
        "bundle",
        "bundle",
        bundle_url("desk", org),
    )


def test_a_plan_that_ended_before_the_upgrade_is_neither_credited_nor_terminated(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=ALICES_DESK)
    succeeded(suite.start_trial(org), 201)
    suite.advance_days(10)

    receipt = succeeded(suite.upgrade(org, "late"), 201)

    assert [credit["service"] for credit in receipt["credits"]] == ["crm"]
    terminated = [
        event["data"]["service"]
        for event in suite.all_events(org)
        if event["type"] == "StandaloneContractTerminated"
    ]
    assert terminated == ["crm"]


def test_a_plan_that_ended_during_the_trial_is_downgraded_to_free_on_cancel(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=ALICES_DESK)
    succeeded(suite.start_trial(org), 201)
    suite.advance_days(10)

    succeeded(suite.cancel_trial(org), 200)

    services = suite.services(org)
    assert services["desk"]["edition"] == "free"
    assert services["desk"]["url"] == standalone_url("desk", org)
    assert services["crm"]["edition"] == "paid"


def test_seats_of_a_plan_that_has_ended_do_not_set_the_minimum(suite: Suite) -> None:
    ended = plan(
        super_admin="u-alice", start="2025-01-01", end="2026-01-01", amount_paid=1, seats=50
    )
    org = suite.organization_with(crm=ended)

    quote = succeeded(suite.quote(org, seats=10), 200)

    assert quote["credits"] == []
    assert quote["credit"] == 0


def test_the_minimum_seats_are_those_of_the_largest_running_plan(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk={**ALICES_DESK, "seats": 12})

    details = refused(suite.quote(org, seats=11), 422, "seats_below_current_licenses")

    assert details["minimum_seats"] == 12
    assert succeeded(suite.quote(org, seats=12), 200)["seats"] == 12


def test_every_view_shows_an_ended_trial_as_expired_at_once(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org), 201)
    suite.advance_days(30)

    directory = succeeded(suite.client.get("/v1/organizations", headers=suite.operator()), 200)

    rows = [row for row in directory["organizations"] if row["id"] == org]
    assert rows[0]["state"] == "trial_expired"
    assert suite.access(org)["bundle"]["state"] == "trial_expired"
    assert succeeded(suite.eligibility(org, "u-alice"), 200)["state"] == "trial_expired"
    expired = succeeded(
        suite.client.get("/v1/organizations?state=trial_expired", headers=suite.operator()), 200
    )
    in_trial = succeeded(
        suite.client.get("/v1/organizations?state=trial", headers=suite.operator()), 200
    )
    assert [row["id"] for row in expired["organizations"]] == [org]
    assert in_trial["organizations"] == []


def test_a_quote_for_a_bought_bundle_is_refused(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.upgrade(org, "buy"), 201)

    refused(suite.quote(org), 409, "bundle_already_active")


def test_a_declined_card_is_not_retried_by_resending_the_same_key(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    first = suite.upgrade(org, "declined-key", payment_token="tok_chargeDeclined")
    again = suite.upgrade(org, "declined-key", payment_token="tok_chargeDeclined")

    refused(first, 402, "card_declined")
    assert again.status_code == 402
    assert again.get_json() == first.get_json()
    assert suite.event_types(org).count("UpgradeCheckoutStarted") == 1


def test_a_key_used_by_another_user_is_reused_not_replayed(suite: Suite) -> None:
    org = suite.organization_with(crm={**CRM_YEARLY, "admins": ["u-carol"]})
    succeeded(suite.upgrade(org, "shared-key", expected_total=782236), 201)

    answer = suite.upgrade(org, "shared-key", user="u-carol", expected_total=782236)

    refused(answer, 422, "idempotency_key_reused")


def test_an_idempotent_put_answers_the_first_answer_again(suite: Suite) -> None:
    org = suite.register()
    path = f"/v1/organizations/{org}/services/crm/subscription"
    headers = {**suite.operator(), "Idempotency-Key": "plan-once"}

    first = suite.client.put(path, json=CRM_YEARLY, headers=headers)
    again = suite.client.put(path, json=CRM_YEARLY, headers=headers)
    other = suite.client.put(path, json={**CRM_YEARLY, "seats": 6}, headers=headers)

    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    refused(other, 422, "idempotency_key_reused")
    assert suite.event_types(org).count("StandaloneSubscriptionRecorded") == 1


def test_unknown_fields_are_refused_in_every_body(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    for answer in (
        suite.as_user(org, "u-alice", "POST", "/trial", json={"days": 60}),
        suite.as_user(
            org,
            "u-alice",
            "PUT",
            "/services/crm/admins",
            json={"super_admin": "u-alice", "admins": [], "role": "owner"},
        ),
        suite.quote(org, discount=50),
        suite.upgrade(org, "extra", expected_total=782236, coupon="FREE"),
    ):
        details = refused(answer, 422, "validation_failed")
        assert details["fields"], details
    assert "TrialStarted" not in suite.event_types(org)


def test_the_purchase_needs_a_payment_token_and_the_expected_total(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    answer = suite.as_user(
        org,
        "u-alice",
        "POST",
        "/upgrade",
        json=UPGRADE_FIELDS,
        headers={"Idempotency-Key": "incomplete"},
    )

    details = refused(answer, 422, "validation_failed")
    assert set(details["fields"]) >= {"payment_token", "expected_total"}


def test_a_service_outside_the_catalog_is_404(suite: Suite) -> None:
    org = suite.register()

    answer = suite.client.put(
        f"/v1/organizations/{org}/services/mail/subscription",
        json=CRM_YEARLY,
        headers=suite.operator(),
    )

    refused(answer, 404, "unknown_service")


def test_min_position_beyond_the_log_is_refused_rather_than_waited_for(suite: Suite) -> None:
    org = suite.register()

    answer = suite.as_user(org, "u-owner", "GET", "/access", query_string={"min_position": 10_000})

    refused(answer, 422, "min_position_ahead_of_log")


def test_another_user_who_satisfies_the_carry_over_rule_may_decide_too(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org, "u-alice"), 201)
    succeeded(suite.change_admins(org, "u-alice", "crm", "u-alice", ["u-bob"]), 200)

    cancelled = succeeded(suite.cancel_trial(org, "u-bob"), 200)

    assert cancelled["bundle"]["state"] == "cancelled"
    cancel = next(e for e in suite.all_events(org) if e["type"] == "TrialCancelled")
    assert cancel["data"]["by"] == "u-bob"


def test_registering_twice_with_one_key_registers_one_organization(suite: Suite) -> None:
    headers = {**suite.operator(), "Idempotency-Key": "register-once"}
    request = {"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"}

    first = suite.client.post("/v1/organizations", json=request, headers=headers)
    again = suite.client.post("/v1/organizations", json=request, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]


def test_a_wrong_method_is_answered_in_json_too(suite: Suite) -> None:
    org = suite.register()

    answer = suite.as_user(org, "u-owner", "DELETE", "/access")

    assert answer.status_code == 405
    assert answer.mimetype == "application/json"
    assert set(answer.get_json()["error"]) == {"code", "message", "details", "request_id"}
