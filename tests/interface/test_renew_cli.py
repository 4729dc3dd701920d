"""``suitesub renew`` and ``suitesub reconcile`` for contracts, on the test clock,
and ``audit replay --as-of`` showing the contract's terms and credit balance."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner

from application.bootstrap import Services, build_services
from application.upgrade import PurchaseRequest
from domain.quote import UpgradeRequest
from interface.cli import main
from tests.application.helpers import CONTACT
from tests.conftest import PINNED_START


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = f"sqlite:///{tmp_path}/suite.sqlite3"
    monkeypatch.setenv("SUITE_DATABASE_URL", url)
    monkeypatch.setenv("SUITE_TEST_CLOCK", "1")
    monkeypatch.setenv("SUITE_TEST_CLOCK_START", PINNED_START)
    built = build_services(url, test_clock=True)
    yield built
    built.close()


def buy(services: Services, token: str = "tok_visa") -> UUID:
    org = UUID(
        services.app.register_organization(
            name="Renew KK", country="JP", owner_user_id="u-owner"
        ).organization_id
    )
    request = UpgradeRequest("monthly", 3, ())
    total = services.app.quote(org, request).total
    services.checkouts.purchase(
        org,
        by="u-owner",
        purchase=PurchaseRequest(request, CONTACT, total, token),
        idempotency_key=None,
    )
    return org


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_renew_records_what_time_decided_once(services: Services) -> None:
    paid, declined = buy(services), buy(services, "tok_visa_renewalDeclined")
    assert services.test_clock is not None
    assert run("renew", "--format", "json")["renewed"] == []
    services.test_clock.advance(timedelta(days=30))  # 2026-12-26: both periods end
    report = run("renew", "--format", "json", "--batch", "1")
    assert report["renewed"] == [str(paid)]
    assert report["failed"] == [str(declined)]
    again = run("renew", "--format", "json")
    assert (again["renewed"], again["failed"]) == ([], [])
    text = CliRunner().invoke(main, ["renew"])
    assert "renewed: 0" in text.output


def test_reconcile_finishes_a_renewal_a_crash_left(services: Services) -> None:
    org = buy(services)
    assert services.test_clock is not None
    services.test_clock.advance(timedelta(days=31))
    _result, renewal_id, charge = services.app.begin_renewal(org)
    assert charge is not None
    contract = services.app.facts(org).contract
    assert contract is not None
    method = contract.terms.payment_method.reference
    assert method is not None
    services.gateway.charge(renewal_id, charge.total, charge.currency, method, "then the crash")
    answer = run("reconcile", "--grace-minutes", "0")
    assert answer["renewals"]["renewed"] == [str(org)]
    events = services.app.organization_events(org)["events"]
    assert [e["type"] for e in events].count("BundleRenewed") == 1


def test_replay_as_of_shows_the_contract_terms_and_credit_balance(services: Services) -> None:
    org = buy(services)
    assert services.test_clock is not None
    services.test_clock.advance(timedelta(days=30))
    run("renew", "--format", "json")
    renewed_at = services.app.clock.now()

    def contract_as_of(moment: str) -> dict[str, Any]:
        replay = run("audit", "replay", "--org", str(org), "--as-of", moment, "--format", "json")
        found: dict[str, Any] = replay["access"]["bundle"]["contract"]
        return found

    after = contract_as_of(renewed_at.isoformat())
    assert after["current_period_start"] == renewed_at.isoformat()
    assert after["credit_balance"] == 0
    before = contract_as_of((renewed_at - timedelta(days=2)).isoformat())
    assert before["current_period_end"] == renewed_at.isoformat()
    text = CliRunner().invoke(main, ["audit", "replay", "--org", str(org), "--format", "table"])
    assert "credit balance ¥0" in " ".join(text.output.split())  # the table wraps at 100
