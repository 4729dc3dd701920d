"""``GET /v1/organizations/{org}/invoices`` and ``.../invoices/{number}`` over HTTP."""

from __future__ import annotations

from typing import Any

from tests.interface.conftest import (
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
