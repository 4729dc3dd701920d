"""The invoices in the audit tool: ``export --invoices``, ``rebuild``, ``replay --explain``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from application.bootstrap import Services, build_services
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.cli import main
from tests.interface.audit_story import Story, tell_story

#: The story's upgrade is recorded on 2027-01-01: the first number of 2027.
NUMBER = "SS-2027-000001"


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


@pytest.fixture
def story(services: Services, clock: ManualClock) -> Story:
    return tell_story(services.app, clock)


def audit(services: Services, *args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args], obj=services, catch_exceptions=False)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_export_invoices_writes_one_line_per_issued_invoice(
    services: Services, story: Story
) -> None:
    result = audit(services, "export", "--invoices", "--quiet")

    assert result.exit_code == 0, result.output
    (line,) = json_lines(result)
    assert set(line) == {
        "number",
        "organization_id",
        "position",
        "version",
        "event_type",
        "issued_at",
        "invoice",
    }
    assert (line["number"], line["organization_id"], line["event_type"]) == (
        NUMBER,
        str(story.acme),
        "UpgradePurchased",
    )
    assert line["invoice"]["number"] == NUMBER
    assert line["issued_at"] == story.upgraded_at.isoformat()
    # The same invoice as the events' export carries in its event.
    events = json_lines(audit(services, "export", "--quiet"))
    (purchased,) = [e for e in events if e["type"] == "UpgradePurchased"]
    assert purchased["data"]["invoice"] == line["invoice"]
    assert purchased["position"] == line["position"]
    # Filtered by organization like the events' export.
    other = audit(services, "export", "--invoices", "--org", str(story.globex), "--quiet")
    assert json_lines(other) == []


def test_rebuild_compares_the_invoices_view_and_apply_repairs_it(
    services: Services, story: Story
) -> None:
    services.invoices.catch_up()
    clean = audit(services, "rebuild", "--format", "json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["invoices"] == 1

    view = services.invoices.view
    with view.dialect.write_transaction(view) as cursor:  # damage the live row
        cursor.execute(
            f"UPDATE {view.invoices} SET position = position + 1000 WHERE number = {view.p}",
            (NUMBER,),
        )
    reported = audit(services, "rebuild", "--format", "json")
    assert reported.exit_code == 1
    differences = json.loads(reported.stdout)["differences"]
    assert [(d["organization_id"], d["field"]) for d in differences] == [
        (str(story.acme), f"invoices.{NUMBER}.position")
    ]
    assert differences[0]["live"] == differences[0]["rebuilt"] + 1000
    table = audit(services, "rebuild", "--format", "table")
    assert "1 invoice(s) rebuilt" in table.stdout

    applied = audit(services, "rebuild", "--apply", "--format", "json")
    assert applied.exit_code == 1  # it found the difference, and repaired it
    again = audit(services, "rebuild", "--format", "json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["differences"] == []
    assert services.invoices.invoice(story.acme, NUMBER).position == differences[0]["rebuilt"]


def test_replay_explain_names_the_invoice_the_upgrade_issued(
    services: Services, story: Story
) -> None:
    result = audit(services, "replay", "--org", str(story.acme), "--explain", "--format", "json")
    assert result.exit_code == 0, result.output
    steps = json.loads(result.stdout)["explanation"]
    (purchase,) = [s for s in steps if s["type"] == "UpgradePurchased"]
    assert purchase["invoice"]["number"] == NUMBER
    assert f"invoice {NUMBER} issued" in purchase["summary"]
    assert all(s["invoice"] is None for s in steps if s is not purchase)

    table = audit(services, "replay", "--org", str(story.acme), "--explain", "--format", "table")
    assert NUMBER in table.stdout
