"""``suitesub reconcile`` finishes a mid-term change's charge a crash left (SPEC §11)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from click.testing import CliRunner

from application.bootstrap import Services, build_services
from application.upgrade import PurchaseRequest
from domain.contract_change import WantedChange
from domain.quote import UpgradeRequest
from interface.cli import main
from tests.application.helpers import CONTACT
from tests.conftest import PINNED_START


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    url = f"sqlite:///{tmp_path}/suite.sqlite3"
    monkeypatch.setenv("SUITE_DATABASE_URL", url)
    monkeypatch.setenv("SUITE_TEST_CLOCK", "1")
    monkeypatch.setenv("SUITE_TEST_CLOCK_START", PINNED_START)
    built = build_services(url, test_clock=True)
    yield built
    built.close()


def reconcile() -> dict[str, object]:
    result = CliRunner().invoke(main, ["reconcile", "--grace-minutes", "0"])
    assert result.exit_code == 0, result.output
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_reconcile_finishes_a_change_charged_before_a_crash(services: Services) -> None:
    org = UUID(
        services.app.register_organization(
            name="Change KK", country="JP", owner_user_id="u-owner"
        ).organization_id
    )
    request = UpgradeRequest("monthly", 3, ())
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
    wanted = WantedChange(seats=5)
    total = services.plan_changes.quote(org, wanted)["total"]
    _result, change_id, _quote = services.app.begin_plan_change(
        org, by="u-owner", wanted=wanted, expected_total=total
    )
    # the change was charged to the card on file (the upgrade's), then the process died
    contract = services.app.facts(org).contract
    assert contract is not None
    card = contract.terms.payment_method.reference
    assert card is not None
    services.gateway.charge(change_id, total, "JPY", card, "then the crash")

    answer = reconcile()

    assert answer["plan_changes"] == {"completed": [change_id], "failed": [], "left_in_flight": []}
    types = [e["type"] for e in services.app.organization_events(org)["events"]]
    assert types.count("BundleChanged") == 1
    assert reconcile()["plan_changes"] == {"completed": [], "failed": [], "left_in_flight": []}
