"""``GET /v1/organizations/{org}/invoices`` and ``.../invoices/{number}`` over HTTP."""

from __future__ import annotations

import io
from typing import Any

from pypdf import PdfReader

from tests.interface.conftest import (
    CRM_YEARLY,
    Caller,
    error_code,
    operator_headers,
    payload,
    user_headers,
)


def upgraded(caller: Caller, key: str = "buy-1") -> tuple[str, dict[str, Any]]:
    org = caller.acme_with_crm_and_desk()
    # Alice must hold rights on Desk too: make her its super admin.
    answer = caller.client.put(
        f"/v1/organizations/{org}/services/desk/admins",
        json={"super_admin": "u-alice", "admins": ["u-bob"]},
        headers=operator_headers(),
    )
    assert answer.status_code == 200, answer.json
    receipt = caller.upgrade(org, key)
    assert receipt.status_code == 201, receipt.json
    return org, payload(receipt)


def test_the_receipt_names_the_invoice_and_the_list_shows_it(caller: Caller) -> None:
    org, receipt = upgraded(caller)
    number = receipt["invoice_number"]
    assert number == "SS-2026-000001"

    listed = caller.as_user(org, "u-alice", "GET", f"/invoices?min_position={receipt['position']}")
    assert listed.status_code == 200, listed.json
    page = payload(listed)
    assert page["next"] is None
    (summary,) = page["invoices"]
    assert summary["number"] == number
    assert summary["total"] == receipt["total"]
    assert summary["payment"] == {"status": "charged", "brand": "visa", "last4": "4242"}

    one = caller.as_user(org, "u-alice", "GET", f"/invoices/{number}")
    assert one.status_code == 200, one.json
    assert one.mimetype == "application/json"
    invoice = payload(one)
    assert invoice["number"] == number
    assert invoice["issuer"]["registration_number"] == "T1234567890123"
    assert invoice["billing_contact"]["company_name"] == "Acme KK"
    assert [c["service"] for c in invoice["credits"]] == ["crm", "desk"]
    assert invoice["subtotal"] - invoice["credit"] + invoice["tax"] == invoice["total"]
    assert invoice["tax_summary"][0]["rate"] == 10
    assert invoice["organization_id"] == org


def test_the_operator_may_read_another_tenant_gets_404(caller: Caller) -> None:
    org, receipt = upgraded(caller)
    number = receipt["invoice_number"]
    other = caller.register(name="Globex", owner="u-gil")

    by_operator = caller.client.get(
        f"/v1/organizations/{org}/invoices/{number}", headers=operator_headers()
    )
    assert by_operator.status_code == 200
    assert payload(by_operator)["number"] == number
    listed = caller.client.get(f"/v1/organizations/{org}/invoices", headers=operator_headers())
    assert [i["number"] for i in payload(listed)["invoices"]] == [number]

    # Globex's user asks for Acme's invoices: 404, never data.
    for path in (f"/v1/organizations/{org}/invoices", f"/v1/organizations/{org}/invoices/{number}"):
        answer = caller.client.get(path, headers=user_headers(other, "u-gil"))
        assert answer.status_code == 404
        assert error_code(answer) == "organization_not_found"
    # Under its own organization, Acme's number is no invoice of Globex's.
    answer = caller.as_user(other, "u-gil", "GET", f"/invoices/{number}")
    assert answer.status_code == 404
    assert error_code(answer) == "invoice_not_found"
    assert payload(caller.as_user(other, "u-gil", "GET", "/invoices"))["invoices"] == []


def test_bad_cursors_and_numbers_are_refused(caller: Caller) -> None:
    org, _receipt = upgraded(caller)
    for query in ("after=nope", "limit=0", "limit=101", "surprise=1"):
        answer = caller.as_user(org, "u-alice", "GET", f"/invoices?{query}")
        assert answer.status_code == 422, query
    # A well-formed number that is not one of this organization's invoices.
    answer = caller.as_user(org, "u-alice", "GET", "/invoices?after=SS-2026-000099")
    assert answer.status_code == 422
    assert error_code(answer) == "unknown_invoice_cursor"
    answer = caller.as_user(org, "u-alice", "GET", "/invoices/not-a-number")
    assert answer.status_code == 404
    assert error_code(answer) == "invoice_not_found"


def test_no_invoices_before_any_charge(caller: Caller) -> None:
    org = caller.register()
    answer = caller.as_user(org, "u-owner", "GET", "/invoices")
    assert answer.status_code == 200
    assert payload(answer) == {"organization_id": org, "invoices": [], "next": None}


def pdf_text(document: bytes) -> str:
    reader = PdfReader(io.BytesIO(document))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_invoice_as_an_a4_pdf_in_japanese_and_english(caller: Caller) -> None:
    org, receipt = upgraded(caller)
    number = receipt["invoice_number"]
    invoice = payload(caller.as_user(org, "u-alice", "GET", f"/invoices/{number}"))

    answer = caller.as_user(
        org, "u-alice", "GET", f"/invoices/{number}", headers={"Accept": "application/pdf"}
    )

    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    assert answer.headers["Content-Disposition"] == f'inline; filename="{number}.pdf"'
    document = answer.get_data()
    assert document.startswith(b"%PDF-")
    (page,) = PdfReader(io.BytesIO(document)).pages
    # A4: 210 × 297 mm in points.
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    text = pdf_text(document)
    for label in (
        "適格請求書",
        "Invoice",
        "請求書番号",
        "登録番号",
        "請求先",
        "小計",
        "消費税",
        "合計",
        "お支払い",
        "値引・充当",
    ):
        assert label in text, label
    assert number in text
    assert "株式会社スイートサンプル" in text
    assert "T1234567890123" in text
    assert "Acme KK" in text
    assert "VISA **** 4242" in text
    # Every amount as ¥1,234: the lines, the credits, the subtotal, the tax, the total.
    amounts = [line["amount"] for line in invoice["lines"]]
    amounts += [invoice["subtotal"], invoice["tax"], invoice["total"]]
    amounts += [entry["taxable"] for entry in invoice["tax_summary"]]
    for amount in amounts:
        assert f"¥{amount:,}" in text, amount
    for credit in invoice["credits"]:
        assert f"-¥{credit['amount']:,}" in text
    # The same invoice renders to the same bytes, whatever the day.
    again = caller.as_user(
        org, "u-alice", "GET", f"/invoices/{number}", headers={"Accept": "application/pdf"}
    )
    assert again.get_data() == document


def test_a_0_total_invoice_says_no_charge_in_both_languages(caller: Caller) -> None:
    org = caller.register()
    caller.subscribe(org, "crm", {**CRM_YEARLY, "amount_paid": 10_000_000})
    receipt = caller.upgrade(org, "buy-0", billing_period="monthly", seats=5, add_ons=[])
    assert receipt.status_code == 201, receipt.json
    assert payload(receipt)["total"] == 0
    number = payload(receipt)["invoice_number"]

    answer = caller.as_user(
        org, "u-alice", "GET", f"/invoices/{number}", headers={"Accept": "application/pdf"}
    )
    text = pdf_text(answer.get_data())
    assert "無償 / no charge" in text
    assert "合計" in text
    assert "¥0" in text


def test_json_unless_pdf_is_preferred(caller: Caller) -> None:
    org, receipt = upgraded(caller)
    path = f"/invoices/{receipt['invoice_number']}"
    for accept in ("*/*", "application/json", "application/json, application/pdf;q=0.5"):
        answer = caller.as_user(org, "u-alice", "GET", path, headers={"Accept": accept})
        assert answer.mimetype == "application/json", accept
    preferred = caller.as_user(
        org, "u-alice", "GET", path, headers={"Accept": "application/pdf, application/json;q=0.9"}
    )
    assert preferred.mimetype == "application/pdf"
    # A PDF of another tenant's invoice is a 404 like the JSON.
    other = caller.register(name="Globex", owner="u-gil")
    refused = caller.client.get(
        f"/v1/organizations/{org}{path}",
        headers={**user_headers(other, "u-gil"), "Accept": "application/pdf"},
    )
    assert refused.status_code == 404
    assert refused.mimetype == "application/json"
