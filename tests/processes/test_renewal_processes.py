"""Renewals in real processes on PostgreSQL (SPEC §11): several workers and
``suitesub renew`` racing on the same due contracts charge each renewal once,
with gapless invoice numbers; a process killed between the charge and its
record leaves the intent, and ``suitesub reconcile`` finishes it without a
second charge."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services
from application.payments import SandboxGateway
from application.upgrade import PurchaseRequest
from domain.quote import UpgradeRequest
from tests.application.helpers import CONTACT
from tests.processes.deployment import REPO_ROOT, SUITESUB, pinned_environment, pinned_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CONTRACTS = 40
TIMEOUT = 120


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Services]]:
    with pinned_store(monkeypatch, "renewals") as store:
        yield store


def buy(services: Services) -> UUID:
    org = UUID(
        services.app.register_organization(
            name="Racing KK", country="JP", owner_user_id="u-owner"
        ).organization_id
    )
    request = UpgradeRequest("monthly", 2, ())
    total = services.app.quote(org, request).total
    services.checkouts.purchase(
        org,
        by="u-owner",
        purchase=PurchaseRequest(request, CONTACT, total, "tok_visa"),
        idempotency_key=None,
    )
    return org


def events(services: Services, org: UUID, kind: str) -> list[dict[str, Any]]:
    found = services.app.organization_events(org, limit=1000)["events"]
    return [e["data"] for e in found if e["type"] == kind]


def charges(services: Services) -> int:
    gateway = services.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway.count_charges()


def test_workers_and_renew_commands_racing_charge_each_renewal_once(
    database: tuple[str, Services],
) -> None:
    url, services = database
    orgs = [buy(services) for _ in range(CONTRACTS)]
    assert charges(services) == CONTRACTS
    assert services.test_clock is not None
    services.test_clock.advance(timedelta(days=30))  # every period ends now
    commands = [
        *([SUITESUB, "worker", "--once"] for _ in range(3)),
        *([SUITESUB, "renew", "--batch", "5", "--format", "json"] for _ in range(3)),
    ]
    racing = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=pinned_environment(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for command in commands
    ]
    outputs = [process.communicate(timeout=TIMEOUT) for process in racing]
    for process, (_out, err) in zip(racing, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    # Whatever each process did, every contract renewed exactly once ...
    for org in orgs:
        assert len(events(services, org, "RenewalChargeStarted")) == 1
        (renewed,) = events(services, org, "BundleRenewed")
        assert renewed["total"] == 16_500
    # ... and was charged exactly once (the upgrade's charge plus one renewal each).
    assert charges(services) == 2 * CONTRACTS
    # The renewal invoices are numbered gaplessly, each number used once.
    numbers = [events(services, org, "BundleRenewed")[0]["invoice"]["number"] for org in orgs]
    assert len(set(numbers)) == CONTRACTS
    sequences = [n.sequence for n in services.invoice_numbers.allocated("SS", 2026)]
    assert sequences == list(range(1, len(sequences) + 1))
    assert set(numbers) <= {n.number for n in services.invoice_numbers.allocated("SS", 2026)}
    # Nothing is left to do.
    again = subprocess.run(
        [SUITESUB, "renew", "--format", "json"],
        cwd=REPO_ROOT,
        env=pinned_environment(url),
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert json.loads(again.stdout)["renewed"] == []


KILLED_AFTER_CHARGE = """
import os, signal
from application.bootstrap import build_services
from application.payments import SandboxGateway

class KilledAfterCharge(SandboxGateway):
    def charge(self, *args, **kwargs):
        super().charge(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # the card is charged; nothing else happens

services = build_services(os.environ["SUITE_DATABASE_URL"], test_clock=True,
                          gateway_factory=KilledAfterCharge)
services.renewals.sweep()
"""


def test_a_process_killed_between_charge_and_record_is_finished_by_reconcile(
    database: tuple[str, Services],
) -> None:
    url, services = database
    org = buy(services)
    assert services.test_clock is not None
    services.test_clock.advance(timedelta(days=30))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_CHARGE],
        cwd=REPO_ROOT,
        env=pinned_environment(url),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    # The intent is recorded and the card charged; the outcome is not.
    (intent,) = events(services, org, "RenewalChargeStarted")
    assert events(services, org, "BundleRenewed") == []
    assert charges(services) == 2
    contract = services.app.facts(org).contract
    assert contract is not None
    assert contract.pending_renewal is not None
    # Within the grace period reconcile leaves it alone: its charge might be in flight.
    early = subprocess.run(
        [SUITESUB, "reconcile"],
        cwd=REPO_ROOT,
        env=pinned_environment(url),
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert json.loads(early.stdout)["renewals"]["renewed"] == []
    finished = subprocess.run(
        [SUITESUB, "reconcile", "--grace-minutes", "0"],
        cwd=REPO_ROOT,
        env=pinned_environment(url),
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert json.loads(finished.stdout)["renewals"]["renewed"] == [str(org)]
    (renewed,) = events(services, org, "BundleRenewed")
    assert renewed["renewal_id"] == intent["renewal_id"]
    assert renewed["payment"]["charge_id"] is not None
    assert charges(services) == 2  # the gateway answered the first charge: no second one
    assert services.app.facts(org).contract.pending_renewal is None  # type: ignore[union-attr]
