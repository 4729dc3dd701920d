"""Fixtures for the HTTP ring: services → Flask app → test client → a caller.

``services`` runs on every store of ``store_url`` with a ManualClock behind
the test clock, so stories move time either way (the clock fixture or
``POST /v1/test-clock``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from application.bootstrap import Services, build_services
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.app import create_app
from interface.auth import mint_token

SECRET = "test-secret-" + "x" * 40
CRM_YEARLY = {
    "seats": 5,
    "billing_period": "yearly",
    "amount_paid": 120_000,
    "period_start": "2026-01-01",
    "period_end": "2027-01-01",
    "super_admin": "u-alice",
    "admins": [],
}
DESK_MONTHLY = {
    "seats": 3,
    "billing_period": "monthly",
    "amount_paid": 9_000,
    "period_start": "2026-11-01",
    "period_end": "2026-12-01",
    "super_admin": "u-bob",
    "admins": [],
}
UPGRADE_BODY: dict[str, Any] = {
    "billing_period": "yearly",
    "seats": 10,
    "add_ons": [{"code": "storage-10gb", "quantity": 2}],
    "billing_contact": {
        "company_name": "Acme KK",
        "country": "JP",
        "email": "billing@acme.example",
    },
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operator_headers() -> dict[str, str]:
    return bearer(mint_token(SECRET, user_id="ops-1", operator=True))


def user_headers(organization_id: str, user_id: str) -> dict[str, str]:
    return bearer(mint_token(SECRET, user_id=user_id, organization_id=organization_id))


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, test_clock=True)
    yield built
    built.close()


@pytest.fixture
def api(services: Services) -> Flask:
    return create_app({"SERVICES": services, "JWT_SECRET": SECRET})


@pytest.fixture
def client(api: Flask) -> FlaskClient:
    return api.test_client()


class Caller:
    """A front end or back office talking to the API: small sentences for stories."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register(self, name: str = "Acme KK", owner: str = "u-owner") -> str:
        answer = self.client.post(
            "/v1/organizations",
            json={"name": name, "country": "JP", "owner_user_id": owner},
            headers=operator_headers(),
        )
        assert answer.status_code == 201, answer.json
        organization_id: str = payload(answer)["id"]
        return organization_id

    def subscribe(self, org: str, service: str, plan: dict[str, Any]) -> Any:
        answer = self.client.put(
            f"/v1/organizations/{org}/services/{service}/subscription",
            json=plan,
            headers=operator_headers(),
        )
        assert answer.status_code == 200, answer.json
        return answer

    def acme_with_crm_and_desk(self) -> str:
        """CRM (super admin Alice) and Desk (super admin Bob), both paid and running."""
        org = self.register()
        self.subscribe(org, "crm", CRM_YEARLY)
        self.subscribe(org, "desk", DESK_MONTHLY)
        return org

    def as_user(self, org: str, user: str, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**user_headers(org, user), **kwargs.pop("headers", {})}
        return self.client.open(
            f"/v1/organizations/{org}{path}", method=method, headers=headers, **kwargs
        )

    def access(self, org: str, user: str = "u-alice") -> dict[str, Any]:
        answer = self.as_user(org, user, "GET", "/access")
        assert answer.status_code == 200, answer.json
        view: dict[str, Any] = answer.json
        return view

    def advance_days(self, days: int) -> Any:
        answer = self.client.post(
            "/v1/test-clock", json={"advance_days": days}, headers=operator_headers()
        )
        assert answer.status_code == 200, answer.json
        return answer.json

    def quote(self, org: str, user: str = "u-alice", **changes: Any) -> Any:
        return self.as_user(org, user, "POST", "/upgrade/quote", json={**UPGRADE_BODY, **changes})

    def upgrade(
        self, org: str, key: str, *, token: str = "tok_visa", user: str = "u-alice", **changes: Any
    ) -> Any:
        body = {**UPGRADE_BODY, **changes}
        if "expected_total" not in body:
            quoted = self.quote(org, user, **changes)
            assert quoted.status_code == 200, quoted.json
            body["expected_total"] = quoted.json["total"]
        body["payment_token"] = token
        return self.as_user(
            org, user, "POST", "/upgrade", json=body, headers={"Idempotency-Key": key}
        )


@pytest.fixture
def caller(client: FlaskClient) -> Caller:
    return Caller(client)


def payload(answer: Any) -> Any:
    """The JSON body of an answer (asserting there is one)."""
    data = answer.get_json()
    assert data is not None, answer.get_data(as_text=True)
    return data


def error_code(answer: Any) -> str:
    body = answer.json
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", "request_id"}, body
    code: str = body["error"]["code"]
    return code
