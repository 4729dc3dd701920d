"""Mid-term plan changes in real processes on PostgreSQL (SPEC §11, §5's order of
work): processes racing the same charged change with the same Idempotency-Key,
in the application or as the API's gunicorn workers, charge it once with one
invoice; a process killed between the gateway's charge
and the recorded outcome leaves the intent, and ``suitesub reconcile`` finishes
it — charged once, invoiced once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.bootstrap import Services
from application.payments import SandboxGateway
from application.upgrade import PurchaseRequest
from domain.contract_change import WantedChange
from domain.quote import UpgradeRequest
from tests.application.helpers import CONTACT
from tests.conftest import fresh_postgres_database
from tests.interface.conftest import UPGRADE_BODY
from tests.processes.deployment import (
    OPERATOR,
    REPO_ROOT,
    SUITESUB,
    Deployment,
    at_once,
    pinned_environment,
    pinned_store,
    user,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RACERS = 4
TIMEOUT = 120
WANTED = WantedChange(seats=6)  # from 4: charged now, pro rata
KEY = "one-change"


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Services]]:
    with pinned_store(monkeypatch, "plan_changes") as store:
        yield store


def bought(services: Services) -> tuple[UUID, int]:
    """Bought monthly with 4 seats (the card on file is the upgrade's), 10 days in;
    the change's quoted total."""
    org = UUID(
        services.app.register_organization(
            name="Changing KK", country="JP", owner_user_id="u-owner"
        ).organization_id
    )
    request = UpgradeRequest("monthly", 4, ())
    services.checkouts.purchase(
        org,
        by="u-owner",
        purchase=PurchaseRequest(
            request, CONTACT, services.app.quote(org, request).total, "tok_visa"
        ),
        idempotency_key=None,
    )
    assert services.test_clock is not None
    services.test_clock.advance(timedelta(days=10))
    total: int = services.plan_changes.quote(org, WANTED)["total"]
    assert total == 11_000  # floor(2 × 7,500 × 20 / 30) + 10 %
    return org, total


def events(services: Services, org: UUID, kind: str) -> list[dict[str, Any]]:
    found = services.app.organization_events(org, limit=1000)["events"]
    return [e["data"] for e in found if e["type"] == kind]


def charges(services: Services) -> int:
    gateway = services.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway.count_charges()


def change_invoices(services: Services, org: UUID) -> list[str]:
    """The change invoices the invoices view lists (caught up first)."""
    services.invoices.catch_up()
    listed = services.invoices.invoices(org, limit=100)["invoices"]
    return [i["number"] for i in listed if i["kind"] == "change"]


def assert_invoice_numbers_gapless(services: Services) -> list[str]:
    allocated = services.invoice_numbers.allocated("SS", 2026)
    assert [n.sequence for n in allocated] == list(range(1, len(allocated) + 1))
    return [n.number for n in allocated]


RACING_CHANGE = """
import json, os, sys, time
from uuid import UUID
from application.bootstrap import build_services
from application.payments import SandboxGateway
from domain.contract_change import WantedChange

class SlowGateway(SandboxGateway):
    def charge(self, *args, **kwargs):
        time.sleep(0.3)  # a real gateway's latency: the racers overlap while it charges
        return super().charge(*args, **kwargs)

services = build_services(os.environ["SUITE_DATABASE_URL"], test_clock=True,
                          gateway_factory=SlowGateway)
print("ready", flush=True)
sys.stdin.readline()  # every racer is released at once
try:
    answer = services.plan_changes.change(
        UUID(sys.argv[1]), by="u-owner", wanted=WantedChange(seats=6),
        expected_total=int(sys.argv[2]), idempotency_key=sys.argv[3])
    print(json.dumps({"answer": answer}))
except Exception as refusal:
    print(json.dumps({"refused": getattr(refusal, "code", repr(refusal))}))
services.close()
"""


def test_processes_racing_the_same_change_with_the_same_key_charge_it_once(
    database: tuple[str, Services],
) -> None:
    url, services = database
    org, total = bought(services)
    assert charges(services) == 1
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACING_CHANGE, str(org), str(total), KEY],
            cwd=REPO_ROOT,
            env=pinned_environment(url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    for racer in racers:  # wait until each has built its services
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=TIMEOUT)
        assert racer.returncode == 0, err[-2000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))

    answers = [o["answer"] for o in outcomes if "answer" in o]
    refusals = [o["refused"] for o in outcomes if "refused" in o]
    # Each racer heard the change, or that it was being charged (retry for its answer).
    assert answers, outcomes
    assert set(refusals) <= {"change_in_progress"}, outcomes
    # One intent, one outcome, one charge, one invoice.
    (started,) = events(services, org, "ChangeChargeStarted")
    (changed,) = events(services, org, "BundleChanged")
    assert changed["change_id"] == started["change_id"]
    assert charges(services) == 2  # the upgrade's and the change's
    numbers = assert_invoice_numbers_gapless(services)
    assert numbers == ["SS-2026-000001", changed["invoice"]["number"]]
    assert change_invoices(services, org) == [changed["invoice"]["number"]]
    assert services.app.facts(org).contract.terms.seats == 6  # type: ignore[union-attr]
    # Every answer is the one change, and so is a later retry with the key.
    retry = services.plan_changes.change(
        org, by="u-owner", wanted=WANTED, expected_total=total, idempotency_key=KEY
    )
    assert (retry["status"], retry["change_id"]) == ("changed", started["change_id"])
    assert retry["invoice_number"] == changed["invoice"]["number"]
    for answer in answers:
        assert answer == retry
    assert charges(services) == 2


KILLED_AFTER_CHARGE = """
import os, signal, sys
from uuid import UUID
from application.bootstrap import build_services
from application.payments import SandboxGateway
from domain.contract_change import WantedChange

class KilledAfterCharge(SandboxGateway):
    def charge(self, *args, **kwargs):
        super().charge(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # the card is charged; nothing else happens

services = build_services(os.environ["SUITE_DATABASE_URL"], test_clock=True,
                          gateway_factory=KilledAfterCharge)
services.plan_changes.change(
    UUID(sys.argv[1]), by="u-owner", wanted=WantedChange(seats=6),
    expected_total=int(sys.argv[2]), idempotency_key=sys.argv[3])
"""


def reconcile(url: str, *arguments: str) -> dict[str, Any]:
    finished = subprocess.run(
        [SUITESUB, "reconcile", *arguments],
        cwd=REPO_ROOT,
        env=pinned_environment(url),
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    report: dict[str, Any] = json.loads(finished.stdout)["plan_changes"]
    return report


def test_a_process_killed_between_charge_and_record_is_finished_by_reconcile(
    database: tuple[str, Services],
) -> None:
    url, services = database
    org, total = bought(services)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_CHARGE, str(org), str(total), KEY],
        cwd=REPO_ROOT,
        env=pinned_environment(url),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    # The intent is recorded and the card charged; the outcome is not.
    (intent,) = events(services, org, "ChangeChargeStarted")
    change_id = intent["change_id"]
    assert events(services, org, "BundleChanged") == []
    assert charges(services) == 2
    contract = services.app.facts(org).contract
    assert contract is not None
    assert contract.pending_change is not None
    assert contract.terms.seats == 4
    assert assert_invoice_numbers_gapless(services) == ["SS-2026-000001"]
    # Within the grace period reconcile leaves it alone: its charge might be in flight.
    assert reconcile(url) == {"completed": [], "failed": [], "left_in_flight": [change_id]}

    report = reconcile(url, "--grace-minutes", "0")

    assert report == {"completed": [change_id], "failed": [], "left_in_flight": []}
    (changed,) = events(services, org, "BundleChanged")
    assert changed["change_id"] == change_id
    assert changed["payment"]["charge_id"] is not None
    assert changed["total"] == total
    assert charges(services) == 2  # the gateway answered the first charge: no second one
    number = changed["invoice"]["number"]
    assert assert_invoice_numbers_gapless(services) == ["SS-2026-000001", number]
    assert change_invoices(services, org) == [number]
    assert services.app.facts(org).contract.terms.seats == 6  # type: ignore[union-attr]
    # Done once: another reconcile finds nothing, and the customer's retry with
    # the key hears the change reconcile recorded.
    assert reconcile(url, "--grace-minutes", "0") == {
        "completed": [],
        "failed": [],
        "left_in_flight": [],
    }
    retry = services.plan_changes.change(
        org, by="u-owner", wanted=WANTED, expected_total=total, idempotency_key=KEY
    )
    assert (retry["status"], retry["change_id"], retry["invoice_number"]) == (
        "changed",
        change_id,
        number,
    )
    assert charges(services) == 2
    assert len(events(services, org, "BundleChanged")) == 1


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with fresh_postgres_database("plan_change_http") as url:
        running = Deployment(url, tmp_path)
        try:
            running.start_api(workers=4)
            running.start_worker()
            yield running
        finally:
            running.stop()


def test_api_workers_racing_the_same_change_with_the_same_key_charge_it_once(
    deployment: Deployment,
) -> None:
    org = deployment.register("Changing KK")
    owner = user(org, "u-owner")
    base = f"/v1/organizations/{org}"
    plan = {**UPGRADE_BODY, "billing_period": "monthly", "seats": 4, "add_ons": []}
    status, quote, _ = deployment.call("POST", f"{base}/upgrade/quote", token=owner, body=plan)
    assert status == 200, quote
    status, receipt, _ = deployment.call(
        "POST",
        f"{base}/upgrade",
        token=owner,
        body={**plan, "payment_token": "tok_visa", "expected_total": quote["total"]},
        headers={"Idempotency-Key": "buy"},
    )
    assert status == 201, receipt
    status, clock, _ = deployment.call(
        "POST", "/v1/test-clock", token=OPERATOR, body={"advance_days": 10}
    )
    assert status == 200, clock
    status, priced, _ = deployment.call(
        "POST", f"{base}/subscription/change/quote", token=owner, body={"seats": 6}
    )
    assert (status, priced["total"]) == (200, 11_000), priced
    body = {"seats": 6, "expected_total": priced["total"]}

    def send(_index: int) -> tuple[int, Any, dict[str, str]]:
        return deployment.call(
            "POST",
            f"{base}/subscription/change",
            token=owner,
            body=body,
            headers={"Idempotency-Key": KEY},
        )

    answers = at_once(8, send)

    changed = [a[1] for a in answers if a[0] == 200]
    others = [(a[0], a[1]["error"]["code"]) for a in answers if a[0] != 200]
    assert changed, answers
    # The key's claimant does the work; a request meanwhile hears "retry shortly".
    assert set(others) <= {(409, "idempotency_key_in_use")}, answers
    assert all(c == changed[0] for c in changed)
    assert changed[0]["status"] == "changed"
    with psycopg.connect(deployment.database_url) as connection:
        charged = connection.execute(
            "SELECT amount FROM sandbox_charges WHERE status = 'succeeded' ORDER BY amount"
        ).fetchall()
    assert [row[0] for row in charged] == [11_000, receipt["total"]]
    status, page, _ = deployment.call("GET", f"{base}/events?limit=500", token=OPERATOR)
    assert status == 200, page
    types = [e["type"] for e in page["events"]]
    assert (types.count("ChangeChargeStarted"), types.count("BundleChanged")) == (1, 1)
    status, invoices, _ = deployment.call(
        "GET", f"{base}/invoices?min_position={changed[0]['position']}", token=owner
    )
    assert status == 200, invoices
    assert [(i["kind"], i["number"]) for i in invoices["invoices"]] == [
        ("change", changed[0]["invoice_number"]),
        ("upgrade", receipt["invoice_number"]),
    ]
    # Every later retry with the key replays the one answer.
    status, replayed, headers = send(0)
    assert (status, replayed) == (200, changed[0])
    assert headers.get("Idempotent-Replayed") == "true"
