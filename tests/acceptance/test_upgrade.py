"""SPEC §5 and §10: quote, checkout, payment, and what the upgrade does to the standalone plans.

Reference article: on upgrade the standalone contracts are dissolved and one
CRM Plus contract starts; what was paid for the remaining period is deducted.
"""

from __future__ import annotations

from typing import Any

from tests.acceptance.conftest import (
    CATALOG_ORDER,
    CRM_YEARLY,
    DESK_MONTHLY,
    Suite,
    bundle_url,
    refused,
    succeeded,
)

# SPEC §10, to the yen: CRM paid 120,000 for 365 days, 100 of them left on 2026-11-26.
SPEC_QUOTE = {
    "currency": "JPY",
    "billing_period": "yearly",
    "seats": 10,
    "lines": [
        {
            "kind": "bundle",
            "code": "crmplus",
            "quantity": 10,
            "unit_price": 6000,
            "months": 12,
            "amount": 720000,
        },
        {
            "kind": "add_on",
            "code": "storage-10gb",
            "quantity": 2,
            "unit_price": 1000,
            "months": 12,
            "amount": 24000,
        },
    ],
    "subtotal": 744000,
    "credits": [
        {
            "service": "crm",
            "amount_paid": 120000,
            "remaining_days": 100,
            "total_days": 365,
            "amount": 32876,
            # Beyond SPEC §10's keys: the plan period credited (a service may
            # hold several; docs/domain.md, one credit entry per period).
            "period_start": "2026-03-06",
            "period_end": "2027-03-06",
        }
    ],
    "credit": 32876,
    "unapplied_credit": 0,
    "tax": 71112,
    "total": 782236,
    "contract_start": "2026-11-26T09:00:00+00:00",
    "contract_end": "2027-11-26T09:00:00+00:00",
}


def in_trial_with_crm(suite: Suite) -> str:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org), 201)
    return org


def test_the_quote_reproduces_the_worked_example_of_spec_section_10(suite: Suite) -> None:
    org = in_trial_with_crm(suite)

    quote = succeeded(suite.quote(org), 200)

    assert quote == SPEC_QUOTE


def test_a_quote_records_nothing(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    before = suite.all_events(org)

    succeeded(suite.quote(org), 200)

    assert suite.all_events(org) == before


def test_a_monthly_quote_prices_a_user_at_7500_for_one_month(suite: Suite) -> None:
    org = suite.register()

    quote = succeeded(
        suite.quote(
            org,
            "u-owner",
            billing_period="monthly",
            seats=3,
            add_ons=[
                {"code": "extra-portal", "quantity": 1},
                {"code": "advanced-analytics", "quantity": 2},
            ],
        ),
        200,
    )

    assert [
        (line["code"], line["unit_price"], line["months"], line["amount"])
        for line in quote["lines"]
    ] == [
        ("crmplus", 7500, 1, 22500),
        ("extra-portal", 3000, 1, 3000),
        ("advanced-analytics", 1500, 1, 3000),
    ]
    assert quote["subtotal"] == 28500
    assert quote["credits"] == []
    assert quote["credit"] == 0
    assert quote["tax"] == 2850
    assert quote["total"] == 31350
    assert quote["contract_end"] == "2026-12-26T09:00:00+00:00"


def test_tax_is_applied_once_to_what_remains_after_the_credit(suite: Suite) -> None:
    org = in_trial_with_crm(suite)

    quote = succeeded(suite.quote(org, billing_period="monthly", seats=5, add_ons=[]), 200)

    assert quote["subtotal"] == 37500
    assert quote["credit"] == 32876
    assert quote["unapplied_credit"] == 0
    assert quote["tax"] == 462  # floor((37,500 - 32,876) x 10 %)
    assert quote["total"] == 37500 - 32876 + 462


def test_credit_beyond_the_subtotal_is_left_unapplied_and_nothing_is_taxed(suite: Suite) -> None:
    org = suite.organization_with(crm={**CRM_YEARLY, "amount_paid": 1_000_000})

    quote = succeeded(suite.quote(org, billing_period="monthly", seats=5, add_ons=[]), 200)

    assert quote["credits"][0]["amount"] == 273972  # floor(1,000,000 x 100 / 365)
    assert quote["credit"] == 37500
    assert quote["unapplied_credit"] == 273972 - 37500
    assert quote["tax"] == 0
    assert quote["total"] == 0


def test_a_contract_starting_on_the_31st_ends_on_the_last_day_of_a_shorter_month(
    suite: Suite,
) -> None:
    org = suite.register()
    suite.advance_days(65)  # 2027-01-30 09:00
    suite.advance_days(1)  # 2027-01-31 09:00

    quote = succeeded(suite.quote(org, "u-owner", billing_period="monthly", seats=1), 200)

    assert quote["contract_start"] == "2027-01-31T09:00:00+00:00"
    assert quote["contract_end"] == "2027-02-28T09:00:00+00:00"


def test_fewer_seats_than_the_current_licenses_are_refused(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk={**DESK_MONTHLY, "super_admin": "u-alice"})

    refused(suite.quote(org, seats=4), 422, "seats_below_current_licenses")
    refused(
        suite.upgrade(org, "too-few", seats=4, expected_total=1),
        422,
        "seats_below_current_licenses",
    )
    assert succeeded(suite.quote(org, seats=5), 200)["seats"] == 5


def test_quote_input_is_validated_field_by_field(suite: Suite) -> None:
    org = in_trial_with_crm(suite)

    for changes in (
        {"seats": 0},
        {"seats": 10_001},
        {"billing_period": "weekly"},
        {"add_ons": [{"code": "no-such-add-on", "quantity": 1}]},
        {
            "add_ons": [
                {"code": "storage-10gb", "quantity": 1},
                {"code": "storage-10gb", "quantity": 1},
            ]
        },
        {"surprise": True},
    ):
        details = refused(suite.quote(org, **changes), 422, "validation_failed")
        assert details, changes


def test_buying_the_bundle_answers_the_quote_plus_checkout_payment_version_and_position(
    suite: Suite,
) -> None:
    org = in_trial_with_crm(suite)

    receipt = succeeded(suite.upgrade(org, "buy-1", expected_total=782236), 201)

    # Every command answer of this API also names its organization (docs/api.md),
    # and the receipt names the purchase's invoice (SPEC §11).
    assert set(receipt) == set(SPEC_QUOTE) | {
        "checkout_id",
        "payment",
        "invoice_number",
        "version",
        "position",
        "organization_id",
    }
    assert receipt["organization_id"] == org
    assert receipt["invoice_number"] == "SS-2026-000001"
    assert {key: receipt[key] for key in SPEC_QUOTE} == SPEC_QUOTE
    assert isinstance(receipt["checkout_id"], str)
    assert receipt["checkout_id"]
    assert set(receipt["payment"]) == {"gateway", "charge_id", "brand", "last4"}
    assert receipt["payment"]["gateway"] == "sandbox"
    assert receipt["payment"]["brand"] == "visa"
    assert receipt["payment"]["last4"] == "4242"
    assert isinstance(receipt["version"], int)
    assert isinstance(receipt["position"], int)
    view = suite.access(org, min_position=receipt["position"])
    assert view["version"] == receipt["version"]
    assert view["bundle"]["state"] == "active"


def test_a_mastercard_token_pays_too(suite: Suite) -> None:
    org = in_trial_with_crm(suite)

    receipt = succeeded(suite.upgrade(org, "buy-mc", payment_token="tok_mastercard"), 201)

    assert receipt["payment"]["brand"] == "mastercard"
    assert receipt["payment"]["last4"] == "4444"


def test_the_upgrade_ends_each_standalone_contract_crediting_its_remaining_days(
    suite: Suite,
) -> None:
    desk = {**DESK_MONTHLY, "super_admin": "u-alice"}
    org = suite.organization_with(crm=CRM_YEARLY, desk=desk)
    succeeded(suite.start_trial(org), 201)

    receipt = succeeded(suite.upgrade(org, "buy-2"), 201)

    events = suite.all_events(org)
    purchased = [e for e in events if e["type"] == "UpgradePurchased"]
    terminated = [e["data"] for e in events if e["type"] == "StandaloneContractTerminated"]
    assert len(purchased) == 1
    assert purchased[0]["data"]["checkout_id"] == receipt["checkout_id"]
    assert purchased[0]["data"]["total"] == receipt["total"]
    # The payment the receipt shows, and the reusable payment method its first
    # charge returned (the card on file, SPEC §11), which the receipt does not show.
    recorded = purchased[0]["data"]["payment"]
    assert {key: recorded[key] for key in receipt["payment"]} == receipt["payment"]
    assert set(recorded) == {*receipt["payment"], "payment_method"}
    assert recorded["payment_method"].startswith("pm_")
    assert [(t["service"], t["remaining_days"], t["amount_credited"]) for t in terminated] == [
        ("crm", 100, 32876),
        ("desk", 5, 1500),
    ]
    assert receipt["credit"] == 32876 + 1500
    assert events[-1]["position"] == receipt["position"]
    assert events[-1]["version"] == receipt["version"]
    for service in suite.access(org)["services"]:
        assert (service["edition"], service["contract"], service["access"], service["url"]) == (
            "paid",
            "bundle",
            "bundle",
            bundle_url(service["code"], org),
        )


def test_buying_without_a_trial_straight_from_none(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    receipt = succeeded(suite.upgrade(org, "no-trial"), 201)

    assert receipt["total"] == 782236
    types = suite.event_types(org)
    assert "TrialStarted" not in types
    assert types[-2:] == ["UpgradePurchased", "StandaloneContractTerminated"]
    assert suite.access(org)["bundle"]["state"] == "active"


def test_buying_after_a_cancelled_trial(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    succeeded(suite.cancel_trial(org), 200)

    succeeded(suite.upgrade(org, "after-cancel"), 201)

    view = suite.access(org)
    assert view["bundle"]["state"] == "active"
    assert [s["code"] for s in view["services"] if s["edition"] == "paid"] == CATALOG_ORDER


def test_buying_after_the_trial_expired(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    suite.advance_days(31)

    receipt = succeeded(suite.upgrade(org, "after-expiry"), 201)

    assert receipt["credits"][0]["remaining_days"] == 69
    assert suite.access(org)["bundle"]["state"] == "active"


def test_the_bundle_is_bought_once(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    succeeded(suite.upgrade(org, "first"), 201)

    refused(suite.upgrade(org, "second", expected_total=782236), 409, "bundle_already_active")
    assert suite.event_types(org).count("UpgradePurchased") == 1


def test_a_total_that_changed_since_the_quote_is_refused_with_the_fresh_quote_and_no_charge(
    suite: Suite,
) -> None:
    org = in_trial_with_crm(suite)
    seen = succeeded(suite.quote(org), 200)
    suite.advance_days(1)  # one day less of CRM to credit
    before = suite.event_types(org)

    details = refused(
        suite.upgrade(org, "stale", expected_total=seen["total"]), 409, "quote_changed"
    )

    fresh: dict[str, Any] = details["quote"]
    assert fresh["credits"][0]["remaining_days"] == 99
    assert fresh["credit"] == 120000 * 99 // 365
    assert fresh["total"] != seen["total"]
    assert fresh == succeeded(suite.quote(org), 200)
    assert suite.event_types(org) == before  # nothing recorded, nothing charged
    receipt = succeeded(suite.upgrade(org, "fresh", expected_total=fresh["total"]), 201)
    assert receipt["total"] == fresh["total"]


def test_a_declined_card_records_the_failed_checkout_and_leaves_the_trial_running(
    suite: Suite,
) -> None:
    org = in_trial_with_crm(suite)

    refused(
        suite.upgrade(org, "declined", payment_token="tok_chargeDeclined"), 402, "card_declined"
    )

    types = suite.event_types(org)
    assert types[-2:] == ["UpgradeCheckoutStarted", "UpgradeCheckoutFailed"]
    failed = suite.all_events(org)[-1]
    assert failed["data"]["reason"] == "card_declined"
    assert suite.access(org)["bundle"]["state"] == "trial"
    assert "upgrade" in suite.access(org)["bundle"]["available_actions"]
    succeeded(suite.upgrade(org, "another-card", payment_token="tok_visa"), 201)


def test_each_sandbox_failure_answers_its_own_code(suite: Suite) -> None:
    org = in_trial_with_crm(suite)

    refused(
        suite.upgrade(org, "k1", payment_token="tok_insufficientFunds"), 402, "insufficient_funds"
    )
    refused(
        suite.upgrade(org, "k2", payment_token="tok_processingError"),
        502,
        "payment_gateway_error",
    )
    refused(suite.upgrade(org, "k3", payment_token="tok_made_up"), 402, "invalid_payment_token")

    assert suite.event_types(org).count("UpgradePurchased") == 0
    assert suite.access(org)["bundle"]["state"] == "trial"


def test_card_numbers_and_cvcs_are_never_accepted(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    before = suite.event_types(org)

    for card in (
        {"card_number": "4242424242424242"},
        {"cvc": "123"},
        {"payment_token": "4242 4242 4242 4242"},
    ):
        refused(
            suite.upgrade(org, "card", expected_total=782236, **card),
            422,
            "raw_card_data_not_accepted",
        )
    refused(suite.quote(org, card_number="4242424242424242"), 422, "raw_card_data_not_accepted")

    assert suite.event_types(org) == before


def test_the_same_key_and_body_answer_the_first_receipt_without_charging_twice(
    suite: Suite,
) -> None:
    org = in_trial_with_crm(suite)

    first = suite.upgrade(org, "same-key", expected_total=782236)
    again = suite.upgrade(org, "same-key", expected_total=782236)

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert suite.event_types(org).count("UpgradeCheckoutStarted") == 1
    assert suite.event_types(org).count("UpgradePurchased") == 1


def test_the_same_key_with_another_body_is_refused(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    succeeded(suite.upgrade(org, "used-key", expected_total=782236), 201)

    refused(
        suite.upgrade(org, "used-key", seats=11, expected_total=860_836),
        422,
        "idempotency_key_reused",
    )


def test_the_upgrade_needs_an_idempotency_key(suite: Suite) -> None:
    org = in_trial_with_crm(suite)
    request = {
        "billing_period": "yearly",
        "seats": 10,
        "add_ons": [{"code": "storage-10gb", "quantity": 2}],
        "billing_contact": {
            "company_name": "Acme KK",
            "country": "JP",
            "email": "billing@acme.example",
        },
        "payment_token": "tok_visa",
        "expected_total": 782236,
    }

    answer = suite.as_user(org, "u-alice", "POST", "/upgrade", json=request)

    refused(answer, 400, "idempotency_key_required")
    assert "UpgradeCheckoutStarted" not in suite.event_types(org)


def test_an_idempotency_key_replays_other_commands_too(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    key = {"Idempotency-Key": "start-once"}

    first = suite.as_user(org, "u-alice", "POST", "/trial", json={}, headers=key)
    again = suite.as_user(org, "u-alice", "POST", "/trial", json={}, headers=key)

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert suite.event_types(org).count("TrialStarted") == 1


def test_after_a_gateway_error_the_same_key_and_body_may_be_sent_again(suite: Suite) -> None:
    org = in_trial_with_crm(suite)

    first = suite.upgrade(org, "retry-me", payment_token="tok_processingError")
    again = suite.upgrade(org, "retry-me", payment_token="tok_processingError")

    refused(first, 502, "payment_gateway_error")
    refused(again, 502, "payment_gateway_error")
    assert suite.event_types(org).count("UpgradePurchased") == 0
    assert suite.access(org)["bundle"]["state"] == "trial"


def test_a_key_whose_purchase_failed_at_the_gateway_is_not_reused_for_another_card(
    suite: Suite,
) -> None:
    org = in_trial_with_crm(suite)
    refused(
        suite.upgrade(org, "gateway-down", payment_token="tok_processingError"),
        502,
        "payment_gateway_error",
    )

    other_card = suite.upgrade(org, "gateway-down", payment_token="tok_mastercard")

    refused(other_card, 422, "idempotency_key_reused")


def test_a_key_refused_with_quote_changed_is_not_reused_for_the_fresh_total(
    suite: Suite,
) -> None:
    org = in_trial_with_crm(suite)
    seen = succeeded(suite.quote(org), 200)
    suite.advance_days(1)
    fresh = refused(
        suite.upgrade(org, "stale-total", expected_total=seen["total"]), 409, "quote_changed"
    )["quote"]

    with_fresh_total = suite.upgrade(org, "stale-total", expected_total=fresh["total"])

    refused(with_fresh_total, 422, "idempotency_key_reused")


def test_a_yearly_contract_from_a_leap_day_ends_on_the_last_day_of_february(
    suite: Suite,
) -> None:
    org = suite.register()
    suite.advance_days(460)  # 2028-02-29 09:00

    quote = succeeded(suite.quote(org, "u-owner", billing_period="yearly", seats=1), 200)

    assert quote["contract_start"] == "2028-02-29T09:00:00+00:00"
    assert quote["contract_end"] == "2029-02-28T09:00:00+00:00"


def test_buying_without_a_trial_follows_the_carry_over_rule_too(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)

    for user, missing in (("u-bob", ["crm"]), ("u-owner", ["crm", "desk"])):
        answer = suite.upgrade(org, f"buy-{user}", user=user)
        assert answer.status_code == 403, answer.get_json()
        details = answer.get_json()["error"]["details"]
        assert details == {
            "missing_admin_rights": missing,
            "super_admins": {"crm": "u-alice", "desk": "u-bob"},
        }
    assert "UpgradeCheckoutStarted" not in suite.event_types(org)
