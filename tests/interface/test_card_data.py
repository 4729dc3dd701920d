"""Raw card data is refused, and leaves no trace in the database or the logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from application.bootstrap import Services
from domain.clock import ManualClock
from interface.app import create_app
from interface.card_guard import card_data_locations, luhn_valid
from tests.interface.conftest import CRM_YEARLY, SECRET, UPGRADE_BODY, Caller, error_code

CARD_NUMBER = "4111111111111111"
SPACED = "4111 1111 1111 1111"


@pytest.fixture
def store_url() -> str:
    """Not about storage: the in-memory store is enough (the stories run on every store)."""
    return "memory://"


@pytest.mark.parametrize(
    "extra",
    [
        {"card_number": "tok_visa"},
        {"cardNumber": "x"},
        {"cvc": "123"},
        {"CVV": "123"},
        {"exp_month": 12},
        {"number": "1"},
        {"pan": "x"},
        {"card": {"brand": "visa"}},
        {"billing_contact": {**UPGRADE_BODY["billing_contact"], "company_name": SPACED}},
        {"payment_token": CARD_NUMBER},
        {"expected_total": int(CARD_NUMBER)},
        {"add_ons": [{"code": f"note {CARD_NUMBER}", "quantity": 1}]},
    ],
)
def test_a_body_with_card_data_is_refused_before_anything_else(
    caller: Caller, extra: dict[str, object]
) -> None:
    org = caller.register()
    body = {**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": 1, **extra}

    answer = caller.as_user(
        org, "u-owner", "POST", "/upgrade", json=body, headers={"Idempotency-Key": "k"}
    )

    assert answer.status_code == 422
    assert error_code(answer) == "raw_card_data_not_accepted"
    assert CARD_NUMBER not in answer.get_data(as_text=True)


def test_numbers_that_are_not_card_numbers_pass() -> None:
    assert luhn_valid(CARD_NUMBER)
    assert not luhn_valid("4111111111111112")
    harmless = {
        "expected_total": 816_230,
        "organization": "7d0c8f2e-1b2a-4c3d-9e8f-123456789012",
        "phone": "+81 3 1234 5678",
        "not_luhn": "4111111111111112",
        "too_short": "424242424242",
    }
    assert list(card_data_locations(harmless)) == []


def test_a_submitted_card_number_is_nowhere_in_the_database_file_or_logs(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "suite.sqlite3"
    api = create_app(
        {"DATABASE_URL": f"sqlite:///{database}", "JWT_SECRET": SECRET, "CLOCK": clock}
    )
    caller = Caller(api.test_client())
    caplog.set_level(logging.DEBUG)
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)

    attempts: list[dict[str, Any]] = [
        {"card_number": CARD_NUMBER, "cvc": "123"},
        {"payment_token": CARD_NUMBER},
        {"billing_contact": {**UPGRADE_BODY["billing_contact"], "company_name": SPACED}},
    ]
    for index, extra in enumerate(attempts):
        body = {**UPGRADE_BODY, "payment_token": "tok_visa", "expected_total": 1, **extra}
        answer = caller.as_user(
            org, "u-alice", "POST", "/upgrade", json=body, headers={"Idempotency-Key": f"k{index}"}
        )
        assert answer.status_code == 422
    bought = caller.upgrade(org, "k-real")  # a real purchase writes the tables too
    assert bought.status_code == 201
    services: Services = api.extensions["suitesub"]
    services.close()

    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for needle in (CARD_NUMBER, SPACED):
        assert needle.encode() not in stored
        assert needle not in caplog.text
    assert b"tok_visa" not in stored  # even tokens are not kept, only the charge reference
