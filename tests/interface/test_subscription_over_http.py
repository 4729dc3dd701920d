"""The contract after the upgrade over HTTP (SPEC §11): the terms, cancellation at
period end and its withdrawal, the card on file, dunning paid by a new card."""

from __future__ import annotations

from typing import Any

from application.bootstrap import Services
from tests.interface.conftest import Caller, error_code, payload

MONTHLY = {"billing_period": "monthly", "seats": 2, "add_ons": []}


def bought(caller: Caller, token: str = "tok_visa") -> str:
    org = caller.register()
    answer = caller.upgrade(org, f"buy-{org}", token=token, user="u-owner", **MONTHLY)
    assert answer.status_code == 201, answer.json
    return org


def subscription(caller: Caller, org: str) -> dict[str, Any]:
    answer = caller.as_user(org, "u-owner", "GET", "/subscription")
    assert answer.status_code == 200, answer.json
    found: dict[str, Any] = payload(answer)
    return found


def put_card(caller: Caller, org: str, token: str) -> Any:
    return caller.as_user(
        org, "u-owner", "PUT", "/subscription/payment-method", json={"payment_token": token}
    )


def test_the_subscription_shows_the_contract_terms(caller: Caller) -> None:
    org = bought(caller)
    found = subscription(caller, org)
    contract = found["contract"]
    assert found["state"] == "active"
    assert contract["billing_period"] == "monthly"
    assert contract["seats"] == 2
    assert contract["add_ons"] == []
    assert contract["cancel_at_period_end"] is False
    assert contract["scheduled_change"] is None
    assert contract["credit_balance"] == 0
    assert contract["payment_method"] == {"brand": "visa", "last4": "4242"}
    assert "past_due_since" not in contract
    # the access view carries the same block
    assert caller.access(org, "u-owner")["bundle"]["contract"] == contract


def test_there_is_no_subscription_before_the_upgrade(caller: Caller) -> None:
    org = caller.register()
    answer = caller.as_user(org, "u-owner", "GET", "/subscription")
    assert answer.status_code == 404
    assert error_code(answer) == "no_subscription"


def test_cancellation_at_period_end_and_its_withdrawal(caller: Caller, services: Services) -> None:
    org = bought(caller)
    cancelled = caller.as_user(org, "u-owner", "POST", "/subscription/cancellation", json={})
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["contract"]["cancel_at_period_end"] is True
    twice = caller.as_user(org, "u-owner", "POST", "/subscription/cancellation", json={})
    assert twice.status_code == 409
    assert error_code(twice) == "cancellation_already_scheduled"
    withdrawn = caller.as_user(org, "u-owner", "DELETE", "/subscription/cancellation")
    assert withdrawn.status_code == 200, withdrawn.json
    assert withdrawn.json["contract"]["cancel_at_period_end"] is False
    again = caller.as_user(org, "u-owner", "DELETE", "/subscription/cancellation")
    assert again.status_code == 409
    assert error_code(again) == "no_cancellation_scheduled"
    caller.as_user(org, "u-owner", "POST", "/subscription/cancellation", json={})
    caller.advance_days(31)
    report = services.renewals.sweep()
    assert report.ended == [org]
    ended = subscription(caller, org)
    assert ended["state"] == "ended"
    assert ended["contract"]["end_reason"] == "cancelled"
    services_rows = caller.access(org, "u-owner")["services"]
    assert {(s["edition"], s["access"]) for s in services_rows} == {("free", "standalone")}


def test_a_stranger_cannot_cancel(caller: Caller) -> None:
    org = bought(caller)
    answer = caller.as_user(org, "u-nobody", "POST", "/subscription/cancellation", json={})
    assert answer.status_code == 403
    assert error_code(answer) == "bundle_action_not_allowed"


def test_a_new_card_while_past_due_pays_at_once(caller: Caller, services: Services) -> None:
    org = bought(caller, token="tok_visa_renewalDeclined")
    caller.advance_days(31)
    assert services.renewals.sweep().failed == [org]
    past_due = subscription(caller, org)
    assert past_due["state"] == "past_due"
    assert past_due["contract"]["next_payment_attempt_at"] is not None
    # the grace period keeps access
    rows = caller.access(org, "u-owner")["services"]
    assert {s["access"] for s in rows} == {"bundle"}
    declined = caller.as_user(
        org,
        "u-owner",
        "PUT",
        "/subscription/payment-method",
        json={"payment_token": "tok_chargeDeclined"},
    )
    assert declined.status_code == 402
    assert error_code(declined) == "card_declined"
    changed = caller.as_user(
        org,
        "u-owner",
        "PUT",
        "/subscription/payment-method",
        json={"payment_token": "tok_mastercard"},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["renewal"] == "renewed"
    assert changed.json["state"] == "active"
    assert changed.json["contract"]["payment_method"] == {"brand": "mastercard", "last4": "4444"}
    read = caller.as_user(
        org, "u-owner", "GET", f"/subscription?min_position={changed.json['position']}"
    )
    assert read.json["state"] == "active"
    assert "past_due_since" not in read.json["contract"]


def test_a_card_change_while_active_only_replaces_the_card(caller: Caller) -> None:
    org = bought(caller)
    changed = caller.as_user(
        org,
        "u-owner",
        "PUT",
        "/subscription/payment-method",
        json={"payment_token": "tok_mastercard"},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["renewal"] is None
    assert changed.json["contract"]["payment_method"]["last4"] == "4444"


def test_raw_card_data_is_refused_for_the_card_on_file(caller: Caller) -> None:
    org = bought(caller)
    answer = caller.as_user(
        org,
        "u-owner",
        "PUT",
        "/subscription/payment-method",
        json={"payment_token": "tok_visa", "card_number": "4242424242424242"},
    )
    assert answer.status_code == 422
    assert error_code(answer) == "raw_card_data_not_accepted"


def test_cancelling_while_past_due_ends_at_once(caller: Caller, services: Services) -> None:
    org = bought(caller, token="tok_visa_renewalDeclined")
    caller.advance_days(31)
    services.renewals.sweep()
    answer = caller.as_user(org, "u-owner", "POST", "/subscription/cancellation", json={})
    assert answer.status_code == 200, answer.json
    assert answer.json["state"] == "ended"
    assert answer.json["contract"]["end_reason"] == "cancelled"
