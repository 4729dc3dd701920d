"""Changing the plan mid-term over HTTP (SPEC §11): quote, change, replay, races, refusals.

Changes are charged to the real sandbox card on file: the reusable payment
method the upgrade's charge made."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from flask import Flask

from application.bootstrap import Services
from application.idempotency import DEFAULT_LEASE
from application.payments import ChargeResult, SandboxGateway
from application.sql_tables import SqlTables
from domain.clock import Clock, ManualClock
from interface.app import create_app
from tests.interface.conftest import SECRET, Caller, error_code, payload

MONTHLY = {"billing_period": "monthly", "seats": 4, "add_ons": []}


def bought(caller: Caller, token: str = "tok_visa", **plan: Any) -> str:
    """Bought monthly with 4 seats (or ``plan``) with ``token``, whose charge puts
    the card on file."""
    org = caller.register()
    answer = caller.upgrade(org, f"buy-{org}", token=token, user="u-owner", **{**MONTHLY, **plan})
    assert answer.status_code == 201, answer.json
    return org


def quote(caller: Caller, org: str, **body: Any) -> Any:
    return caller.as_user(org, "u-owner", "POST", "/subscription/change/quote", json=body)


def change(caller: Caller, org: str, key: str | None, **body: Any) -> Any:
    if "expected_total" not in body:
        quoted = quote(caller, org, **body)
        assert quoted.status_code == 200, quoted.json
        body["expected_total"] = quoted.json["total"]
    headers = {} if key is None else {"Idempotency-Key": key}
    return caller.as_user(
        org, "u-owner", "POST", "/subscription/change", json=body, headers=headers
    )


def test_more_seats_are_quoted_then_bought_pro_rata(caller: Caller) -> None:
    org = bought(caller)
    caller.advance_days(10)  # 20 of the month's 30 days remain

    quoted = quote(caller, org, seats=6)
    assert quoted.status_code == 200, quoted.json
    assert payload(quoted)["lines"] == [
        {
            "kind": "bundle",
            "code": "crmplus",
            "quantity": 2,
            "unit_price": 7500,
            "months": None,
            "days": 20,
            "delta_per_period": 15000,
            "period_days": 30,
            "amount": 10000,
        }
    ]
    answer = change(caller, org, "chg-1", seats=6)

    assert answer.status_code == 200, answer.json
    body = payload(answer)
    assert (body["status"], body["total"]) == ("changed", 11_000)
    assert body["invoice_number"].startswith("SS-")
    assert body["payment"]["brand"] == "visa"
    assert body["contract"]["seats"] == 6
    assert caller.access(org, "u-owner")["bundle"]["contract"]["seats"] == 6


def test_a_decrease_shows_as_the_contracts_scheduled_change(caller: Caller) -> None:
    org = bought(caller)

    answer = change(caller, org, "chg-1", seats=2)

    assert answer.status_code == 200, answer.json
    assert payload(answer)["status"] == "scheduled"
    contract = caller.access(org, "u-owner")["bundle"]["contract"]
    assert contract["seats"] == 4
    assert contract["scheduled_change"] == {"seats": 2, "add_ons": None, "billing_period": None}


def test_the_same_key_replays_the_first_answer_and_charges_once(
    caller: Caller, services: Services
) -> None:
    org = bought(caller)
    caller.advance_days(10)
    first = change(caller, org, "chg-1", seats=6)
    charged = services.gateway.count_charges()  # type: ignore[attr-defined]

    again = change(caller, org, "chg-1", seats=6, expected_total=first.json["total"])

    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == first.json
    assert services.gateway.count_charges() == charged  # type: ignore[attr-defined]
    other_body = change(caller, org, "chg-1", seats=7, expected_total=0)
    assert other_body.status_code == 422
    assert error_code(other_body) == "idempotency_key_reused"


STORAGE = [{"code": "storage-10gb", "quantity": 2}]
#: Every kind of change: (what was bought, the change's body, the answer's status).
CHANGE_KINDS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "more seats": ({}, {"seats": 6}, "changed"),
    "a new add-on": ({}, {"add_ons": STORAGE}, "changed"),
    "monthly to yearly": ({}, {"billing_period": "yearly"}, "changed"),
    "fewer seats": ({}, {"seats": 2}, "scheduled"),
    "a removed add-on": ({"add_ons": STORAGE}, {"add_ons": []}, "scheduled"),
    "yearly to monthly": ({"billing_period": "yearly"}, {"billing_period": "monthly"}, "scheduled"),
    "more seats and a removed add-on": (
        {"add_ons": STORAGE},
        {"seats": 6, "add_ons": []},
        "changed",
    ),
}


def stream_of(services: Services, org: str) -> list[str]:
    events = services.app.organization_events(UUID(org), limit=1000)["events"]
    return [e["type"] for e in events]


@pytest.mark.parametrize("kind", CHANGE_KINDS)
def test_a_replay_of_every_kind_of_change_answers_the_first_answer(
    caller: Caller, services: Services, kind: str
) -> None:
    plan, body, status = CHANGE_KINDS[kind]
    org = bought(caller, **plan)
    caller.advance_days(10)
    first = change(caller, org, "chg-1", **body)
    assert (first.status_code, payload(first)["status"]) == (200, status)
    recorded = stream_of(services, org)
    charged = services.gateway.count_charges()  # type: ignore[attr-defined]

    again = change(caller, org, "chg-1", **body, expected_total=first.json["total"])

    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == first.json
    assert stream_of(services, org) == recorded
    assert services.gateway.count_charges() == charged  # type: ignore[attr-defined]


class ProcessDied(Exception):
    """The API process died after the change was recorded, before its answer was stored."""


@pytest.mark.parametrize("kind", CHANGE_KINDS)
def test_an_answer_lost_before_it_was_stored_is_heard_again_once_the_claim_expires(
    caller: Caller,
    services: Services,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    plan, body, status = CHANGE_KINDS[kind]
    org = bought(caller, **plan)
    caller.advance_days(10)
    body = {**body, "expected_total": quote(caller, org, **body).json["total"]}
    lost: list[tuple[int, str]] = []

    def die_before_storing(_claim: Any, status: int, answer: str) -> None:
        lost.append((status, answer))
        raise ProcessDied

    with monkeypatch.context() as crash:
        crash.setattr(services.idempotency, "finish", die_before_storing)
        died = change(caller, org, "chg-lost", **body)
    assert (died.status_code, error_code(died)) == (500, "internal_error")
    ((lost_status, lost_answer),) = lost
    assert (lost_status, json.loads(lost_answer)["status"]) == (200, status)
    recorded = stream_of(services, org)
    charged = services.gateway.count_charges()  # type: ignore[attr-defined]
    # The dead process's claim holds the key until its lease ends.
    in_use = change(caller, org, "chg-lost", **body)
    assert (in_use.status_code, error_code(in_use)) == (409, "idempotency_key_in_use")
    clock.advance(DEFAULT_LEASE + timedelta(seconds=1))

    again = change(caller, org, "chg-lost", **body)

    assert again.status_code == lost_status
    assert again.json == json.loads(lost_answer)
    assert stream_of(services, org) == recorded
    assert services.gateway.count_charges() == charged  # type: ignore[attr-defined]
    stored = change(caller, org, "chg-lost", **body)  # now the answer is stored
    assert stored.headers.get("Idempotent-Replayed") == "true"
    assert stored.json == again.json


def test_the_change_needs_an_idempotency_key(caller: Caller) -> None:
    org = bought(caller)

    answer = change(caller, org, None, seats=6, expected_total=0)

    assert answer.status_code == 400
    assert error_code(answer) == "idempotency_key_required"


def test_an_expected_total_that_differs_is_409_quote_changed_with_the_fresh_quote(
    caller: Caller,
) -> None:
    org = bought(caller)
    caller.advance_days(10)

    answer = change(caller, org, "chg-1", seats=6, expected_total=1)

    assert answer.status_code == 409
    assert error_code(answer) == "quote_changed"
    assert answer.json["error"]["details"]["quote"]["total"] == 11_000


def test_nothing_altered_is_422_no_change(caller: Caller) -> None:
    org = bought(caller)

    for answer in (quote(caller, org), quote(caller, org, seats=4, billing_period="monthly")):
        assert answer.status_code == 422
        assert error_code(answer) == "no_change"


def test_seats_out_of_range_are_the_validation_error(caller: Caller) -> None:
    org = bought(caller)

    for seats in (0, 10_001):
        answer = quote(caller, org, seats=seats)
        assert answer.status_code == 422
        assert error_code(answer) == "validation_failed"
        assert "seats" in str(answer.json["error"]["details"])


def test_unknown_fields_and_unknown_add_ons_are_refused(caller: Caller) -> None:
    org = bought(caller)

    unknown_field = quote(caller, org, seats=5, payment_token="tok_visa")
    unknown_add_on = quote(caller, org, add_ons=[{"code": "no-such", "quantity": 1}])

    assert (unknown_field.status_code, unknown_add_on.status_code) == (422, 422)
    assert error_code(unknown_add_on) == "validation_failed"


def test_a_change_while_past_due_is_409_payment_past_due(
    caller: Caller, services: Services
) -> None:
    org = bought(caller)
    caller.advance_days(30)
    _result, renewal_id, _charge = services.app.begin_renewal(UUID(org))
    services.app.fail_renewal(UUID(org), renewal_id=renewal_id, reason="card_declined")
    assert caller.access(org, "u-owner")["bundle"]["state"] == "past_due"

    answer = change(caller, org, "chg-1", seats=6, expected_total=0)

    assert answer.status_code == 409
    assert error_code(answer) == "payment_past_due"


def test_a_declined_card_is_402_and_the_terms_stay(caller: Caller) -> None:
    # The card's first charge (the upgrade) succeeds; every later one is declined.
    org = bought(caller, token="tok_visa_renewalDeclined")
    caller.advance_days(10)

    answer = change(caller, org, "chg-1", seats=6)

    assert answer.status_code == 402
    assert error_code(answer) == "card_declined"
    assert caller.access(org, "u-owner")["bundle"]["contract"]["seats"] == 4


def test_a_change_before_the_upgrade_is_409_no_active_contract(caller: Caller) -> None:
    org = caller.register()

    answer = quote(caller, org, seats=6)

    assert answer.status_code == 409
    assert error_code(answer) == "no_active_contract"


class BlockingGateway(SandboxGateway):
    """Holds the change's charge until told to go on (to overlap two requests)."""

    def __init__(self, tables: SqlTables, clock: Clock) -> None:
        super().__init__(tables, clock)
        self.charging = threading.Event()
        self.go_on = threading.Event()
        self.hold = False

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        if self.hold:
            self.charging.set()
            assert self.go_on.wait(timeout=10)
        return super().charge(*args, **kwargs)


def test_racing_requests_with_the_same_key_charge_once(store_url: str, clock: ManualClock) -> None:
    api: Flask = create_app(
        {
            "DATABASE_URL": store_url,
            "JWT_SECRET": SECRET,
            "CLOCK": clock,
            "TEST_CLOCK": True,
            "GATEWAY_FACTORY": BlockingGateway,
        }
    )
    services: Services = api.extensions["suitesub"]
    gateway = services.gateway
    assert isinstance(gateway, BlockingGateway)
    caller = Caller(api.test_client())
    org = bought(caller)
    caller.advance_days(10)
    total = quote(caller, org, seats=6).json["total"]
    gateway.hold = True

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            change, Caller(api.test_client()), org, "chg-1", seats=6, expected_total=total
        )
        assert gateway.charging.wait(timeout=10)
        second = change(caller, org, "chg-1", seats=6, expected_total=total)
        other_key = change(caller, org, "chg-2", seats=6, expected_total=total)
        gateway.go_on.set()
        first_answer = first.result(timeout=10)

    assert first_answer.status_code == 200, first_answer.json
    assert (second.status_code, error_code(second)) == (409, "idempotency_key_in_use")
    assert (other_key.status_code, error_code(other_key)) == (409, "change_in_progress")
    assert gateway.count_charges() == 2  # the upgrade and this change, once
    replay = change(caller, org, "chg-1", seats=6, expected_total=total)
    assert replay.json == first_answer.json
    services.close()


def test_a_change_is_charged_to_the_card_put_on_file_by_put_payment_method(
    caller: Caller, services: Services
) -> None:
    org = bought(caller)  # visa 4242, the upgrade's card
    put = caller.as_user(
        org,
        "u-owner",
        "PUT",
        "/subscription/payment-method",
        json={"payment_token": "tok_mastercard"},
    )
    assert put.status_code == 200, put.json
    caller.advance_days(10)

    answer = change(caller, org, "chg-mc", seats=6)

    assert answer.status_code == 200, answer.json
    assert (answer.json["payment"]["brand"], answer.json["payment"]["last4"]) == (
        "mastercard",
        "4444",
    )
    events = services.app.organization_events(UUID(org), limit=1000)["events"]
    (card,) = [e["data"] for e in events if e["type"] == "PaymentMethodChanged"]
    (started,) = [e["data"] for e in events if e["type"] == "ChangeChargeStarted"]
    assert card["payment_method"].startswith("pm_")  # the gateway's saved card
    assert started["payment_method"] == card["payment_method"]
    invoice = caller.as_user(org, "u-owner", "GET", f"/invoices/{answer.json['invoice_number']}")
    assert invoice.json["payment"] == {"status": "charged", "brand": "mastercard", "last4": "4444"}
