"""Acceptance ring: the SPEC's flows told end to end over HTTP, as a client sees them.

These tests are written from ``SPEC.md`` alone: they talk to the Flask app
through its test client with real JWTs and move time only through the test
clock (``POST /v1/test-clock``). They run on the in-memory store: storage is
the point of other suites, the contract is the point of this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from application.bootstrap import build_services
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.app import create_app
from interface.auth import mint_token

SECRET = "acceptance-secret-" + "s" * 40
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # tests/conftest.py's clock
CATALOG_ORDER = ["crm", "salesiq", "campaigns", "desk", "projects", "social", "survey", "analytics"]
UPGRADE_FIELDS = {
    "billing_period": "yearly",
    "seats": 10,
    "add_ons": [{"code": "storage-10gb", "quantity": 2}],
    "billing_contact": {
        "company_name": "Acme KK",
        "country": "JP",
        "email": "billing@acme.example",
    },
}


def plan(
    *,
    super_admin: str,
    start: str,
    end: str,
    amount_paid: int,
    seats: int = 5,
    billing_period: str = "yearly",
    admins: list[str] | None = None,
) -> dict[str, Any]:
    """A standalone subscription body (SPEC §10)."""
    return {
        "seats": seats,
        "billing_period": billing_period,
        "amount_paid": amount_paid,
        "period_start": start,
        "period_end": end,
        "super_admin": super_admin,
        "admins": admins or [],
    }


# CRM paid 120,000 for a year with exactly 100 of its 365 days left on START (SPEC §10).
CRM_YEARLY = plan(super_admin="u-alice", start="2026-03-06", end="2027-03-06", amount_paid=120_000)
DESK_MONTHLY = plan(
    super_admin="u-bob",
    start="2026-11-01",
    end="2026-12-01",
    amount_paid=9_000,
    seats=3,
    billing_period="monthly",
)


def standalone_url(service: str, org: str) -> str:
    return f"https://{service}.suite.example/{org}"


def bundle_url(service: str, org: str) -> str:
    return f"https://crmplus.suite.example/{org}/{service}"


def body(answer: Any) -> Any:
    data = answer.get_json()
    assert data is not None, answer.get_data(as_text=True)
    return data


def succeeded(answer: Any, status: int) -> Any:
    """The JSON body of an answer that must have the given success status."""
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    return body(answer)


def refused(answer: Any, status: int, code: str) -> Any:
    """The details of an error answer, after checking SPEC §6's error shape exactly."""
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    assert answer.mimetype == "application/json"
    error_body = body(answer)
    assert set(error_body) == {"error"}, error_body
    error = error_body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["request_id"], str)
    assert error["request_id"]
    return error["details"]


class Suite:
    """The HTTP API as its two kinds of callers use it: the back office and users."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    # -- the back office -------------------------------------------------
    def operator(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(SECRET, user_id="ops", operator=True)}

    def register(self, name: str = "Acme KK", owner: str = "u-owner") -> str:
        answer = self.client.post(
            "/v1/organizations",
            json={"name": name, "country": "JP", "owner_user_id": owner},
            headers=self.operator(),
        )
        organization_id: str = succeeded(answer, 201)["id"]
        return organization_id

    def record_plan(self, org: str, service: str, subscription: dict[str, Any]) -> Any:
        return succeeded(
            self.client.put(
                f"/v1/organizations/{org}/services/{service}/subscription",
                json=subscription,
                headers=self.operator(),
            ),
            200,
        )

    def organization_with(self, **plans: dict[str, Any]) -> str:
        org = self.register()
        for service, subscription in plans.items():
            self.record_plan(org, service, subscription)
        return org

    def advance(self, **amount: int) -> Any:
        return self.client.post("/v1/test-clock", json=amount, headers=self.operator())

    def advance_days(self, days: float) -> str:
        now: str = succeeded(self.advance(advance_seconds=int(days * 86_400)), 200)["now"]
        return now

    # -- users -------------------------------------------------------------
    def user(self, org: str, user: str) -> dict[str, str]:
        token = mint_token(SECRET, user_id=user, organization_id=org)
        return {"Authorization": f"Bearer {token}"}

    def as_user(self, org: str, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.user(org, user), **kwargs.pop("headers", {})}
        return self.client.open(
            f"/v1/organizations/{org}{path}", method=method, headers=headers, **kwargs
        )

    def eligibility(self, org: str, user: str) -> Any:
        return self.as_user(org, user, "GET", "/trial/eligibility")

    def start_trial(self, org: str, user: str = "u-alice") -> Any:
        return self.as_user(org, user, "POST", "/trial", json={})

    def extend_trial(self, org: str, user: str = "u-alice") -> Any:
        return self.as_user(org, user, "POST", "/trial/extension", json={})

    def cancel_trial(self, org: str, user: str = "u-alice") -> Any:
        return self.as_user(org, user, "POST", "/trial/cancellation", json={})

    def change_admins(
        self, org: str, user: str, service: str, super_admin: str, admins: list[str]
    ) -> Any:
        return self.as_user(
            org,
            user,
            "PUT",
            f"/services/{service}/admins",
            json={"super_admin": super_admin, "admins": admins},
        )

    def quote(self, org: str, user: str = "u-alice", **changes: Any) -> Any:
        return self.as_user(org, user, "POST", "/upgrade/quote", json={**UPGRADE_FIELDS, **changes})

    def upgrade(
        self,
        org: str,
        key: str,
        *,
        user: str = "u-alice",
        payment_token: str = "tok_visa",
        **changes: Any,
    ) -> Any:
        """Buy the bundle for the total just quoted, unless an ``expected_total`` is given."""
        request = {**UPGRADE_FIELDS, **changes, "payment_token": payment_token}
        if "expected_total" not in request:
            quoted = succeeded(self.quote(org, user, **changes), 200)
            request["expected_total"] = quoted["total"]
        return self.as_user(
            org, user, "POST", "/upgrade", json=request, headers={"Idempotency-Key": key}
        )

    def access(self, org: str, user: str = "u-alice", **query: Any) -> Any:
        return succeeded(self.as_user(org, user, "GET", "/access", query_string=query), 200)

    def services(self, org: str, user: str = "u-alice") -> dict[str, dict[str, Any]]:
        return {service["code"]: service for service in self.access(org, user)["services"]}

    def events(self, org: str, user: str = "u-alice", **query: Any) -> Any:
        return succeeded(self.as_user(org, user, "GET", "/events", query_string=query), 200)

    def all_events(self, org: str) -> list[dict[str, Any]]:
        """The whole stream, page after page, following ``next``."""
        events: list[dict[str, Any]] = []
        page = self.events(org)
        events.extend(page["events"])
        while page["next"] is not None:
            page = self.events(org, after=page["next"])
            events.extend(page["events"])
        return events

    def event_types(self, org: str) -> list[str]:
        return [event["type"] for event in self.all_events(org)]


@pytest.fixture
def suite(clock: ManualClock, catalog: Catalog) -> Iterator[Suite]:
    services = build_services("memory://", clock=clock, catalog=catalog, test_clock=True)
    application = create_app({"SERVICES": services, "JWT_SECRET": SECRET})
    yield Suite(application.test_client())
    services.close()
