"""The renewal's and the change's invoices over HTTP (SPEC §11): listed newest first,
read as JSON (lines, tax once per rate, totals, the issuer's registration number)
and as an A4 PDF whose page pdftoppm renders, Japanese text included."""

from __future__ import annotations

import io
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from application.bootstrap import Services
from tests.interface.conftest import Caller, operator_headers, payload

MONTHLY_WITH_STORAGE = {
    "billing_period": "monthly",
    "seats": 4,
    "add_ons": [{"code": "storage-10gb", "quantity": 1}],
}
#: 10 days into the 30-day period: 2 seats more, the add-on from 1 to 2.
CHANGE = {"seats": 6, "add_ons": [{"code": "storage-10gb", "quantity": 2}]}
REGISTRATION_NUMBER = "T1234567890123"  # the catalog's [issuer]


def story(caller: Caller, services: Services) -> tuple[str, dict[str, Any]]:
    """Bought, changed 10 days in, renewed at the period's end: three invoices."""
    org = caller.register()
    bought = caller.upgrade(org, "buy", user="u-owner", **MONTHLY_WITH_STORAGE)
    assert bought.status_code == 201, bought.json
    caller.advance_days(10)
    quoted = caller.as_user(org, "u-owner", "POST", "/subscription/change/quote", json=CHANGE)
    assert quoted.status_code == 200, quoted.json
    changed = caller.as_user(
        org,
        "u-owner",
        "POST",
        "/subscription/change",
        json={**CHANGE, "expected_total": quoted.json["total"]},
        headers={"Idempotency-Key": "more-seats"},
    )
    assert changed.status_code == 200, changed.json
    period_end = payload(changed)["contract"]["current_period_end"]
    moved = caller.client.post(
        "/v1/test-clock", json={"set_to": period_end}, headers=operator_headers()
    )
    assert moved.status_code == 200, moved.json
    # What `suitesub renew` and the worker run: time alone decides the renewal.
    assert services.renewals.sweep().renewed == [org]
    renewed = caller.as_user(org, "u-owner", "GET", "/subscription")
    assert renewed.status_code == 200, renewed.json
    return org, {"upgrade": payload(bought), "change": payload(changed), "renewal": renewed.json}


def get_invoice(caller: Caller, org: str, number: str, **headers: str) -> Any:
    return caller.as_user(org, "u-owner", "GET", f"/invoices/{number}", headers=headers)


def as_listed(invoice: dict[str, Any]) -> dict[str, Any]:
    """The list's summary of a full invoice."""
    keys = ("number", "issued_at", "kind", "currency", "subtotal", "credit", "tax", "total")
    return {**{k: invoice[k] for k in keys}, "payment": invoice["payment"]}


def test_the_list_shows_the_renewal_then_the_change_then_the_upgrade(
    caller: Caller, services: Services
) -> None:
    org, answers = story(caller, services)

    listed = caller.as_user(org, "u-owner", "GET", "/invoices")

    assert listed.status_code == 200, listed.json
    page = payload(listed)
    assert [i["kind"] for i in page["invoices"]] == ["renewal", "change", "upgrade"]
    assert [i["number"] for i in page["invoices"]] == [
        "SS-2026-000003",
        "SS-2026-000002",
        "SS-2026-000001",
    ]
    assert page["invoices"][1]["number"] == answers["change"]["invoice_number"]
    assert page["invoices"][2]["number"] == answers["upgrade"]["invoice_number"]
    for summary in page["invoices"]:
        full = payload(get_invoice(caller, org, summary["number"]))
        assert {k: v for k, v in summary.items() if k != "position"} == as_listed(full)
    # Paged newest first: the cursor walks to the oldest.
    first = payload(caller.as_user(org, "u-owner", "GET", "/invoices?limit=2"))
    rest = payload(
        caller.as_user(org, "u-owner", "GET", f"/invoices?limit=2&after={first['next']}")
    )
    assert [i["number"] for i in first["invoices"] + rest["invoices"]] == [
        i["number"] for i in page["invoices"]
    ]
    assert rest["next"] is None


def assert_a_qualified_invoice(invoice: dict[str, Any]) -> None:
    """What every invoice holds: the issuer's number, totals that add up, tax once per rate."""
    assert invoice["issuer"]["registration_number"] == REGISTRATION_NUMBER
    assert invoice["billing_contact"]["company_name"] == "Acme KK"
    assert invoice["subtotal"] == sum(line["amount"] for line in invoice["lines"])
    assert invoice["credit"] == sum(c["amount"] for c in invoice["credits"])
    (summary,) = invoice["tax_summary"]  # one rate, one entry: tax rounded down once
    assert summary == {
        "rate": 10,
        "taxable": invoice["subtotal"] - invoice["credit"],
        "tax": (invoice["subtotal"] - invoice["credit"]) * 10 // 100,
    }
    assert invoice["tax"] == summary["tax"]
    assert invoice["total"] == invoice["subtotal"] - invoice["credit"] + invoice["tax"]
    assert invoice["payment"] == {"status": "charged", "brand": "visa", "last4": "4242"}


def test_the_changes_invoice_as_json(caller: Caller, services: Services) -> None:
    org, answers = story(caller, services)
    change = answers["change"]

    answer = get_invoice(caller, org, change["invoice_number"])

    assert answer.status_code == 200, answer.json
    assert answer.mimetype == "application/json"
    invoice = payload(answer)
    assert_a_qualified_invoice(invoice)
    assert (invoice["kind"], invoice["charge_key"]) == ("change", change["change_id"])
    assert invoice["issued_at"] == "2026-12-06T09:00:00+00:00"
    # Pro rata for the 20 of the period's 30 days left, per increased line.
    assert [(x["code"], x["quantity"], x["days"], x["amount"]) for x in invoice["lines"]] == [
        ("crmplus", 2, 20, 10_000),  # floor(2 × 7,500 × 20 / 30)
        ("storage-10gb", 1, 20, 666),  # floor(1 × 1,000 × 20 / 30)
    ]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (10_666, 1_066, 11_732)
    # A line's own tax would be 1,000 + 66.6: rounded once on 10,666 it is 1,066.
    assert invoice["total"] == change["total"]
    assert (invoice["period_start"], invoice["period_end"]) == (
        "2026-12-06T09:00:00+00:00",
        "2026-12-26T09:00:00+00:00",
    )


def test_the_renewals_invoice_as_json(caller: Caller, services: Services) -> None:
    org, answers = story(caller, services)
    contract = answers["renewal"]["contract"]

    answer = get_invoice(caller, org, "SS-2026-000003")

    assert answer.status_code == 200, answer.json
    invoice = payload(answer)
    assert_a_qualified_invoice(invoice)
    assert invoice["kind"] == "renewal"
    assert invoice["issued_at"] == "2026-12-26T09:00:00+00:00"
    # One period of the terms in force after the change.
    assert [(x["code"], x["quantity"], x["months"], x["amount"]) for x in invoice["lines"]] == [
        ("crmplus", 6, 1, 45_000),
        ("storage-10gb", 2, 1, 2_000),
    ]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (47_000, 4_700, 51_700)
    assert (invoice["period_start"], invoice["period_end"]) == (
        contract["current_period_start"],
        contract["current_period_end"],
    )
    assert contract["current_period_start"] == "2026-12-26T09:00:00+00:00"


def japanese_title_box(document: bytes) -> tuple[float, float, float, float]:
    """Where the page draws 適格請求書 (points, from the top left): left, top, right, bottom."""
    found: list[tuple[float, float, float]] = []

    def visit(text: str, cm: Any, tm: Any, _font: Any, size: float) -> None:
        if text == "適格請求書":
            found.append((cm[4] + tm[4], cm[5] + tm[5], size))

    (page,) = PdfReader(io.BytesIO(document)).pages
    page.extract_text(visitor_text=visit)
    ((x, baseline, size),) = found
    height = float(page.mediabox.height)
    # Five full-width glyphs; CJK glyphs rise about 0.88 em above the baseline.
    return x, height - baseline - 0.88 * size, x + 5 * size, height - baseline + 0.12 * size


def ink(image: Image.Image, box: tuple[float, float, float, float], dpi: int) -> float:
    """The share of dark pixels inside ``box`` (points)."""
    scale = dpi / 72
    left, top, right, bottom = (round(v * scale) for v in box)
    crop = image.convert("L").crop((left, top, right, bottom))
    histogram = crop.histogram()  # grey levels 0 (black) .. 255 (white)
    return sum(histogram[:128]) / sum(histogram)


@pytest.mark.parametrize("kind", ["change", "renewal"])
def test_the_invoice_as_a_pdf_that_pdftoppm_renders(
    caller: Caller, services: Services, tmp_path: Path, kind: str
) -> None:
    org, answers = story(caller, services)
    number = answers["change"]["invoice_number"] if kind == "change" else "SS-2026-000003"
    invoice = payload(get_invoice(caller, org, number))

    answer = get_invoice(caller, org, number, Accept="application/pdf")

    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    document = answer.get_data()
    assert document.startswith(b"%PDF-")
    (page,) = PdfReader(io.BytesIO(document)).pages
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    text = page.extract_text()
    for expected in (number, REGISTRATION_NUMBER, "Acme KK", "VISA **** 4242"):
        assert expected in text, expected
    for amount in [line["amount"] for line in invoice["lines"]] + [
        invoice["subtotal"],
        invoice["tax"],
        invoice["total"],
    ]:
        assert f"¥{amount:,}" in text, amount
    # The page renders: pdftoppm draws it without complaint, and the Japanese
    # title's glyphs put ink on the page (a missing CJK font leaves it blank).
    (tmp_path / "invoice.pdf").write_bytes(document)
    dpi = 100
    rendered = subprocess.run(
        ["pdftoppm", "-png", "-r", str(dpi), "-singlefile", "invoice.pdf", "page"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stderr == ""
    with Image.open(tmp_path / "page.png") as image:
        assert image.size == (math.ceil(595.276 * dpi / 72), math.ceil(841.89 * dpi / 72))  # A4
        assert ink(image, japanese_title_box(document), dpi) > 0.05
        blank = (300.0, 800.0, 390.0, 818.0)  # the foot of the page holds nothing
        assert ink(image, blank, dpi) == 0
