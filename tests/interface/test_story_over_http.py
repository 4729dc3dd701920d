"""Every flow of the bundle, told through the HTTP API (Flask test client).

Each story runs on every store of ``store_url``.
"""

from __future__ import annotations

from typing import Any

from application.bootstrap import Services
from tests.interface.conftest import UPGRADE_BODY, Caller, error_code, operator_headers, payload


def test_a_trial_that_would_lose_desk_data_is_refused_with_what_to_fix(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    refused = caller.as_user(org, "u-alice", "POST", "/trial", json={})

    assert refused.status_code == 403
    assert error_code(refused) == "trial_initiator_cannot_carry_over"
    assert refused.json["error"]["details"] == {
        "missing_admin_rights": ["desk"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob"},
    }
    eligibility = caller.as_user(org, "u-alice", "GET", "/trial/eligibility").json
    assert eligibility["eligible"] is False
    assert eligibility["missing_admin_rights"] == ["desk"]
    assert eligibility["carried_over"] == ["crm", "desk"]


def test_unifying_the_super_admin_lets_the_trial_start(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    unified = caller.as_user(
        org,
        "u-bob",
        "PUT",
        "/services/desk/admins",
        json={"super_admin": "u-alice", "admins": ["u-bob"]},
    )
    started = caller.as_user(org, "u-alice", "POST", "/trial", json={})

    assert unified.status_code == 200
    assert started.status_code == 201
    assert started.json["bundle"]["state"] == "trial"
    assert started.json["version"] > unified.json["version"]
    assert started.json["position"] > unified.json["position"]
    view = caller.access(org)
    assert view["bundle"]["state"] == "trial"
    assert view["bundle"]["days_left"] == 30
    services = {s["code"]: s for s in view["services"]}
    assert services["crm"]["access"] == "bundle"
    assert services["desk"]["note"] == "available in the bundle after upgrade"
    assert services["campaigns"]["edition"] == "trial"


def test_only_the_super_admin_or_an_operator_changes_a_services_admins(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    refused = caller.as_user(
        org, "u-alice", "PUT", "/services/desk/admins", json={"super_admin": "u-alice"}
    )

    assert refused.status_code == 403
    assert error_code(refused) == "not_service_super_admin"


def _trial_started(caller: Caller) -> str:
    org = caller.register()
    caller.subscribe(org, "crm", {**_crm(), "super_admin": "u-alice"})
    started = caller.as_user(org, "u-alice", "POST", "/trial", json={})
    assert started.status_code == 201, started.json
    return org


def _crm() -> dict[str, Any]:
    from tests.interface.conftest import CRM_YEARLY

    return dict(CRM_YEARLY)


def test_the_trial_expires_when_the_test_clock_passes_its_end(caller: Caller) -> None:
    org = _trial_started(caller)

    moved = caller.advance_days(30)
    view = caller.access(org)

    assert moved["now"] == "2026-12-26T09:00:00+00:00"
    assert view["bundle"]["state"] == "trial_expired"
    assert view["bundle"]["days_left"] == 0
    assert set(view["bundle"]["available_actions"]) == {"extend_trial", "cancel_trial", "upgrade"}


def test_an_expired_trial_is_extended_once_and_only_once(caller: Caller) -> None:
    org = _trial_started(caller)
    caller.advance_days(31)

    extended = caller.as_user(org, "u-alice", "POST", "/trial/extension", json={})
    again = caller.as_user(org, "u-alice", "POST", "/trial/extension", json={})

    assert extended.status_code == 200
    assert extended.json["bundle"]["state"] == "trial"
    assert extended.json["bundle"]["days_left"] == 15
    assert extended.json["bundle"]["extensions_used"] == 1
    assert again.status_code == 409
    assert error_code(again) == "trial_extension_limit_reached"


def test_an_extension_is_refused_before_its_window_opens(caller: Caller) -> None:
    org = _trial_started(caller)

    early = caller.as_user(org, "u-alice", "POST", "/trial/extension", json={})

    assert early.status_code == 409
    assert error_code(early) == "trial_not_extendable"


def test_the_quote_credits_the_unused_part_of_running_plans(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    quote = caller.quote(org, "u-alice")

    assert quote.status_code == 200
    body = quote.json
    assert body["subtotal"] == 744_000
    credits = {c["service"]: c for c in body["credits"]}
    assert credits["crm"]["remaining_days"] == 36
    assert credits["crm"]["amount"] == 120_000 * 36 // 365
    assert credits["desk"]["amount"] == 9_000 * 5 // 30
    assert body["credit"] == credits["crm"]["amount"] + credits["desk"]["amount"]
    assert body["tax"] == (744_000 - body["credit"]) * 10 // 100
    assert body["total"] == 744_000 - body["credit"] + body["tax"]
    assert body["contract_end"] == "2027-11-26T09:00:00+00:00"


def test_a_quote_below_the_current_licenses_is_refused(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    refused = caller.quote(org, "u-alice", seats=4)

    assert refused.status_code == 422
    assert error_code(refused) == "seats_below_current_licenses"
    assert refused.json["error"]["details"]["minimum_seats"] == 5


def test_a_declined_card_records_the_failure_and_charges_nothing(
    caller: Caller, services: Services
) -> None:
    org = _trial_started(caller)

    declined = caller.upgrade(org, "key-declined", token="tok_chargeDeclined")
    poor = caller.upgrade(org, "key-poor", token="tok_insufficientFunds")
    bogus = caller.upgrade(org, "key-bogus", token="tok_nonsense")

    assert (declined.status_code, error_code(declined)) == (402, "card_declined")
    assert (poor.status_code, error_code(poor)) == (402, "insufficient_funds")
    assert (bogus.status_code, error_code(bogus)) == (402, "invalid_payment_token")
    types = [e["type"] for e in caller.as_user(org, "u-alice", "GET", "/events").json["events"]]
    assert types.count("UpgradeCheckoutFailed") == 3
    assert caller.access(org)["bundle"]["state"] == "trial"
    assert services.gateway.count_charges() == 0  # type: ignore[attr-defined]


def test_a_changed_price_is_refused_with_the_fresh_quote(
    caller: Caller, services: Services
) -> None:
    org = _trial_started(caller)
    stale_total = caller.quote(org).json["total"]
    caller.advance_days(3)  # less credit left: the price went up

    refused = caller.upgrade(org, "key-stale", expected_total=stale_total)

    assert refused.status_code == 409
    assert error_code(refused) == "quote_changed"
    fresh = refused.json["error"]["details"]["quote"]
    assert fresh["total"] > stale_total
    assert services.gateway.count_charges() == 0  # type: ignore[attr-defined]
    bought = caller.upgrade(org, "key-fresh", expected_total=fresh["total"])
    assert bought.status_code == 201, bought.json


def test_a_purchase_retried_with_its_key_is_answered_again_without_a_second_charge(
    caller: Caller, services: Services
) -> None:
    org = _trial_started(caller)
    total = caller.quote(org).json["total"]

    first = caller.upgrade(org, "key-1", expected_total=total)
    retry = caller.upgrade(org, "key-1", expected_total=total)

    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.json == first.json
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert first.json["payment"]["brand"] == "visa"
    assert first.json["payment"]["last4"] == "4242"
    assert first.json["checkout_id"].startswith("chk_")
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    view = caller.access(org)
    assert view["bundle"]["state"] == "active"
    assert {s["contract"] for s in view["services"]} == {"bundle"}


def test_a_key_reused_for_a_different_purchase_is_refused(caller: Caller) -> None:
    org = _trial_started(caller)
    total = caller.quote(org).json["total"]
    caller.upgrade(org, "key-1", expected_total=total)

    reused = caller.upgrade(org, "key-1", expected_total=total, seats=11)

    assert reused.status_code == 422
    assert error_code(reused) == "idempotency_key_reused"


def test_an_upgrade_without_an_idempotency_key_is_refused(caller: Caller) -> None:
    org = _trial_started(caller)

    refused = caller.as_user(
        org,
        "u-alice",
        "POST",
        "/upgrade",
        json={**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": 1},
    )

    assert refused.status_code == 400
    assert error_code(refused) == "idempotency_key_required"


def test_a_second_upgrade_finds_the_bundle_active(caller: Caller) -> None:
    org = _trial_started(caller)
    assert caller.upgrade(org, "key-1").status_code == 201

    again = caller.upgrade(org, "key-2", expected_total=1)

    assert again.status_code == 409
    assert error_code(again) == "bundle_already_active"


def test_cancelling_the_trial_drops_unpurchased_services_to_free(caller: Caller) -> None:
    org = _trial_started(caller)

    cancelled = caller.as_user(org, "u-alice", "POST", "/trial/cancellation", json={})

    assert cancelled.status_code == 200
    assert cancelled.json["bundle"]["state"] == "cancelled"
    services = {s["code"]: s for s in caller.access(org)["services"]}
    assert services["crm"]["edition"] == "paid"
    assert services["crm"]["access"] == "standalone"
    assert services["desk"]["edition"] == "free"
    types = [e["type"] for e in caller.as_user(org, "u-alice", "GET", "/events").json["events"]]
    assert types.count("ServiceDowngradedToFree") == 7


def test_a_second_trial_is_refused(caller: Caller) -> None:
    org = _trial_started(caller)
    caller.as_user(org, "u-alice", "POST", "/trial/cancellation", json={})

    again = caller.as_user(org, "u-alice", "POST", "/trial", json={})

    assert again.status_code == 409
    assert error_code(again) == "trial_already_used"


def test_a_trial_start_retried_with_its_key_is_not_refused_as_a_second_trial(
    caller: Caller,
) -> None:
    org = _trial_started_without_trial(caller)
    key = {"Idempotency-Key": "start-1"}

    first = caller.as_user(org, "u-alice", "POST", "/trial", json={}, headers=key)
    retry = caller.as_user(org, "u-alice", "POST", "/trial", json={}, headers=key)

    assert first.status_code == retry.status_code == 201
    assert retry.json == first.json


def _trial_started_without_trial(caller: Caller) -> str:
    org = caller.register()
    caller.subscribe(org, "crm", _crm())
    return org


def test_the_event_stream_pages_oldest_first(caller: Caller) -> None:
    org = _trial_started(caller)

    first = caller.as_user(org, "u-alice", "GET", "/events?limit=2").json
    rest = caller.as_user(org, "u-alice", "GET", f"/events?after={first['next']}").json

    assert [e["type"] for e in first["events"]] == [
        "OrganizationRegistered",
        "StandaloneSubscriptionRecorded",
    ]
    assert [e["type"] for e in rest["events"]] == ["TrialStarted"]
    assert rest["next"] is None
    assert first["events"][0]["at"] == "2026-11-26T09:00:00+00:00"


def test_every_command_answer_carries_version_and_position(caller: Caller) -> None:
    registered = caller.client.post(
        "/v1/organizations",
        json={"name": "Acme", "country": "JP", "owner_user_id": "u-owner"},
        headers=operator_headers(),
    )

    assert payload(registered)["version"] == 1
    assert payload(registered)["position"] >= 1
