"""The purchase saga under stress: races, crashes, gateway failures, retries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from application.bootstrap import Services, build_services
from application.payments import (
    ChargeResult,
    PaymentDeclined,
    PaymentGatewayUnavailable,
    SandboxGateway,
)
from application.sql_tables import SqlTables
from domain.clock import Clock, ManualClock
from interface.app import create_app
from interface.cli import main
from tests.application.helpers import CountingGateway
from tests.interface.conftest import (
    CRM_YEARLY,
    DESK_MONTHLY,
    SECRET,
    Caller,
    error_code,
    operator_headers,
)


class SimulatedCrash(Exception):
    """The process 'dies' at this point: nothing after it runs."""


class CrashAfterCharge(SandboxGateway):
    """Charges the card, then the process dies before the purchase is recorded."""

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        super().charge(*args, **kwargs)
        raise SimulatedCrash


class CrashBeforeCharge(SandboxGateway):
    """The process dies after UpgradeCheckoutStarted, before the gateway is called."""

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        raise SimulatedCrash


class ProcessKilled(BaseException):
    """The process is killed: no handler runs, so the key stays claimed, unanswered."""


class KilledAfterCharge(SandboxGateway):
    """Charges the card, then the process is killed before anything else happens."""

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        super().charge(*args, **kwargs)
        raise ProcessKilled


class BlockingGateway(SandboxGateway):
    """Holds the first charge until told to go on (to overlap two requests)."""

    def __init__(self, tables: SqlTables, clock: Clock) -> None:
        super().__init__(tables, clock)
        self.charging = threading.Event()
        self.go_on = threading.Event()

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        self.charging.set()
        assert self.go_on.wait(timeout=10)
        return super().charge(*args, **kwargs)


def _app(store_url: str, clock: ManualClock, gateway: Callable[..., Any]) -> Flask:
    return create_app(
        {
            "DATABASE_URL": store_url,
            "JWT_SECRET": SECRET,
            "CLOCK": clock,
            "TEST_CLOCK": True,
            "GATEWAY_FACTORY": gateway,
        }
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/race.sqlite3"


def _in_trial(caller: Caller) -> str:
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)
    assert caller.as_user(org, "u-alice", "POST", "/trial", json={}).status_code == 201
    return org


def test_racing_purchases_with_different_keys_charge_once(
    sqlite_url: str, clock: ManualClock
) -> None:
    api = _app(sqlite_url, clock, SandboxGateway)
    caller = Caller(api.test_client())
    org = _in_trial(caller)
    total = caller.quote(org).json["total"]
    start = threading.Barrier(4)

    def buy(key: str) -> tuple[int, str | None]:
        racer = Caller(api.test_client())
        start.wait()
        answer = racer.upgrade(org, key, expected_total=total)
        code = None if answer.status_code == 201 else error_code(answer)
        return answer.status_code, code

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(buy, ["k-a", "k-b", "k-c", "k-d"]))

    assert sorted(status for status, _ in outcomes) == [201, 409, 409, 409]
    assert {code for _, code in outcomes} <= {None, "checkout_in_progress", "bundle_already_active"}
    services: Services = api.extensions["suitesub"]
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    services.close()


def test_a_crash_after_the_charge_is_finished_by_reconcile(
    store_url: str, clock: ManualClock
) -> None:
    api = _app(store_url, clock, CrashAfterCharge)
    services: Services = api.extensions["suitesub"]
    caller = Caller(api.test_client())
    org = _in_trial(caller)

    crashed = caller.upgrade(org, "key-1")
    assert crashed.status_code == 500
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    assert "upgrade" not in caller.access(org)["bundle"]["available_actions"]

    too_early = services.checkouts.reconcile()
    clock.advance(timedelta(minutes=11))
    report = services.checkouts.reconcile()

    assert too_early.completed == []
    assert len(too_early.left_in_flight) == 1
    assert report.completed == too_early.left_in_flight
    assert caller.access(org)["bundle"]["state"] == "active"
    events = caller.as_user(org, "u-alice", "GET", "/events").json["events"]
    purchased = next(e for e in events if e["type"] == "UpgradePurchased")
    charge = services.gateway.lookup(report.completed[0])
    assert charge is not None
    assert purchased["data"]["payment"]["charge_id"] == charge.charge_id
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    assert services.checkouts.reconcile().completed == []  # nothing left to do
    services.close()


def test_a_crash_before_the_charge_is_failed_as_abandoned_by_reconcile(
    store_url: str, clock: ManualClock
) -> None:
    api = _app(store_url, clock, CrashBeforeCharge)
    services: Services = api.extensions["suitesub"]
    caller = Caller(api.test_client())
    org = _in_trial(caller)
    assert caller.upgrade(org, "key-1").status_code == 500

    clock.advance(timedelta(minutes=11))
    report = services.checkouts.reconcile()

    assert len(report.failed) == 1
    events = caller.as_user(org, "u-alice", "GET", "/events").json["events"]
    failed = next(e for e in events if e["type"] == "UpgradeCheckoutFailed")
    assert failed["data"]["reason"] == "abandoned"
    assert "upgrade" in caller.access(org)["bundle"]["available_actions"]
    # The request was not dead after all: its late charge must be refused,
    # or money would be taken for a checkout recorded as failed.
    still_in_flight = SandboxGateway(services.tables, clock)
    with pytest.raises(PaymentDeclined) as late:
        still_in_flight.charge(failed["data"]["checkout_id"], 1, "JPY", "tok_visa", "late")
    assert late.value.code == "checkout_abandoned"
    assert services.gateway.count_charges() == 0  # type: ignore[attr-defined]
    services.close()


def test_while_a_checkout_is_pending_plans_and_admins_are_409_checkout_in_progress(
    store_url: str, clock: ManualClock
) -> None:
    """Money paid for a plan recorded now would be neither credited nor terminated."""
    api = _app(store_url, clock, CrashBeforeCharge)
    caller = Caller(api.test_client())
    org = _in_trial(caller)
    assert caller.upgrade(org, "key-1").status_code == 500  # the checkout stays started
    version = caller.access(org)["version"]

    plan = caller.client.put(
        f"/v1/organizations/{org}/services/desk/subscription",
        json=DESK_MONTHLY,
        headers=operator_headers(),
    )
    admins = caller.as_user(
        org, "u-alice", "PUT", "/services/crm/admins", json={"super_admin": "u-bob", "admins": []}
    )

    assert (plan.status_code, error_code(plan)) == (409, "checkout_in_progress")
    assert (admins.status_code, error_code(admins)) == (409, "checkout_in_progress")
    assert caller.access(org)["version"] == version
    services: Services = api.extensions["suitesub"]
    services.close()


def test_retrying_with_the_key_of_a_crashed_checkout_resumes_it_without_a_second_charge(
    store_url: str, clock: ManualClock
) -> None:
    crashing = _app(store_url, clock, CrashAfterCharge)
    caller = Caller(crashing.test_client())
    org = _in_trial(caller)
    total = caller.quote(org).json["total"]
    assert caller.upgrade(org, "key-1", expected_total=total).status_code == 500
    first_services: Services = crashing.extensions["suitesub"]
    if store_url.startswith("memory"):
        healthy = create_app({"SERVICES": first_services, "JWT_SECRET": SECRET})
        first_services.gateway = SandboxGateway(first_services.tables, clock)
        first_services.checkouts.gateway = first_services.gateway
    else:
        first_services.close()
        healthy = _app(store_url, clock, SandboxGateway)  # the process restarted

    retry = Caller(healthy.test_client()).upgrade(org, "key-1", expected_total=total)

    assert retry.status_code == 201, retry.json
    services: Services = healthy.extensions["suitesub"]
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    services.close()


def test_a_retry_after_reconcile_finished_the_purchase_answers_the_original_receipt(
    store_url: str, clock: ManualClock
) -> None:
    """As payment platforms' keys do: once a key has an outcome, it always answers it."""
    dying = _app(store_url, clock, KilledAfterCharge)
    first_services: Services = dying.extensions["suitesub"]
    caller = Caller(dying.test_client())
    org = _in_trial(caller)
    total = caller.quote(org).json["total"]
    with pytest.raises(ProcessKilled):
        caller.upgrade(org, "key-1", expected_total=total)
    clock.advance(timedelta(minutes=11))  # past the reconcile grace and the key's lease
    (checkout_id,) = first_services.checkouts.reconcile().completed
    if store_url.startswith("memory"):
        restarted = create_app({"SERVICES": first_services, "JWT_SECRET": SECRET})
    else:
        first_services.close()
        restarted = _app(store_url, clock, SandboxGateway)
    services: Services = restarted.extensions["suitesub"]
    retrying = Caller(restarted.test_client())

    retry = retrying.upgrade(org, "key-1", expected_total=total)
    replayed = retrying.upgrade(org, "key-1", expected_total=total)

    assert retry.status_code == 201, retry.json
    receipt = retry.json
    charge = services.gateway.lookup(checkout_id)
    assert charge is not None
    assert (receipt["checkout_id"], receipt["total"]) == (checkout_id, total)
    assert receipt["payment"] == charge.payment_reference()
    events = retrying.as_user(org, "u-alice", "GET", "/events").json["events"]
    assert (receipt["version"], receipt["position"]) == (
        events[-1]["version"],
        events[-1]["position"],
    )
    assert [e["type"] for e in events].count("UpgradePurchased") == 1
    assert (replayed.status_code, replayed.json) == (201, receipt)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    services.close()


class GatewayDownOnce(SandboxGateway):
    """The sandbox, but its first charge meets a gateway outage (nothing charged)."""

    def __init__(self, tables: SqlTables, clock: Clock) -> None:
        super().__init__(tables, clock)
        self.outages_left = 1

    def charge(
        self, key: str, amount: int, currency: str, token: str, description: str
    ) -> ChargeResult:
        if self.outages_left:
            self.outages_left -= 1
            raise PaymentGatewayUnavailable("The payment gateway did not answer.")
        return super().charge(key, amount, currency, token, description)


def test_a_gateway_failure_is_502_and_the_same_request_may_retry_with_its_key(
    store_url: str, clock: ManualClock
) -> None:
    api = _app(store_url, clock, GatewayDownOnce)
    caller = Caller(api.test_client())
    org = _in_trial(caller)
    total = caller.quote(org).json["total"]

    failed = caller.upgrade(org, "key-1", token="tok_visa", expected_total=total)
    # Nothing was charged and the key was released: the same request is retried.
    retried = caller.upgrade(org, "key-1", token="tok_visa", expected_total=total)
    # The key stays bound to that request: another card needs another key.
    other_card = caller.upgrade(org, "key-1", token="tok_mastercard", expected_total=total)

    assert (failed.status_code, error_code(failed)) == (502, "payment_gateway_error")
    assert retried.status_code == 201, retried.json
    assert "Idempotent-Replayed" not in retried.headers
    assert (other_card.status_code, error_code(other_card)) == (422, "idempotency_key_reused")
    events = caller.as_user(org, "u-alice", "GET", "/events").json["events"]
    reasons = [e["data"]["reason"] for e in events if e["type"] == "UpgradeCheckoutFailed"]
    assert reasons == ["payment_gateway_error"]
    services: Services = api.extensions["suitesub"]
    assert services.gateway.count_charges() == 1  # type: ignore[attr-defined]
    services.close()


def test_the_same_key_twice_at_once_is_409_for_the_second(
    store_url: str, clock: ManualClock
) -> None:
    api = _app(store_url, clock, BlockingGateway)
    services: Services = api.extensions["suitesub"]
    gateway = services.gateway
    assert isinstance(gateway, BlockingGateway)
    caller = Caller(api.test_client())
    org = _in_trial(caller)
    total = caller.quote(org).json["total"]

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(Caller(api.test_client()).upgrade, org, "key-1", expected_total=total)
        assert gateway.charging.wait(timeout=10)
        second = caller.upgrade(org, "key-1", expected_total=total)
        gateway.go_on.set()
        first_answer = first.result(timeout=10)

    assert second.status_code == 409
    assert error_code(second) == "idempotency_key_in_use"
    assert first_answer.status_code == 201
    assert gateway.count_charges() == 1
    services.close()


def test_suitesub_reconcile_finishes_a_crashed_checkout(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    long_ago = ManualClock(datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
    api = _app(sqlite_url, long_ago, CrashAfterCharge)
    caller = Caller(api.test_client())
    org = caller.register()
    caller.subscribe(
        org,
        "crm",
        {**CRM_YEARLY, "period_start": "2025-01-01", "period_end": "2026-01-01"},
    )
    assert caller.upgrade(org, "key-1").status_code == 500
    first: Services = api.extensions["suitesub"]
    first.close()
    monkeypatch.setenv("SUITE_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("SUITE_TEST_CLOCK", raising=False)

    result = CliRunner().invoke(main, ["reconcile"])

    assert result.exit_code == 0, result.output
    assert '"completed": ["chk_' in result.output
    after = build_services(sqlite_url)
    assert after.app.facts(__import__("uuid").UUID(org)).bundle_state == "active"
    after.close()


def test_a_total_of_0_is_bought_over_http_without_a_gateway_call(
    store_url: str, clock: ManualClock
) -> None:
    api = _app(store_url, clock, CountingGateway)
    services: Services = api.extensions["suitesub"]
    caller = Caller(api.test_client())
    org = caller.register()
    caller.subscribe(org, "crm", {**CRM_YEARLY, "amount_paid": 1_000_000})
    monthly = {"billing_period": "monthly", "seats": 5, "add_ons": [], "expected_total": 0}
    assert caller.quote(org, billing_period="monthly", seats=5, add_ons=[]).json["total"] == 0

    bought = caller.upgrade(org, "key-1", **monthly)
    replayed = caller.upgrade(org, "key-1", **monthly)

    assert bought.status_code == 201, bought.json
    no_charge = {"gateway": None, "charge_id": None, "brand": None, "last4": None}
    assert bought.json["payment"] == no_charge
    assert replayed.json == bought.json
    assert caller.access(org)["bundle"]["state"] == "active"
    events = caller.as_user(org, "u-alice", "GET", "/events").json["events"]
    purchased = next(e for e in events if e["type"] == "UpgradePurchased")
    assert purchased["data"]["payment"] == no_charge
    assert isinstance(services.gateway, CountingGateway)
    assert services.gateway.calls == []
    services.close()
