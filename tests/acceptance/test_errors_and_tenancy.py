"""SPEC §6 and §7: who may call what, every error as JSON, the test clock, and the public paths."""

from __future__ import annotations

import pytest

from application.bootstrap import build_services
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.app import create_app
from interface.auth import mint_token
from tests.acceptance.conftest import (
    CRM_YEARLY,
    SECRET,
    START,
    Suite,
    refused,
    succeeded,
)

USER_ROUTES = [
    ("GET", "/access", None),
    ("GET", "/events", None),
    ("GET", "/trial/eligibility", None),
    ("POST", "/trial", {}),
    ("POST", "/trial/extension", {}),
    ("POST", "/trial/cancellation", {}),
    ("POST", "/upgrade/quote", {"billing_period": "yearly", "seats": 10}),
    ("PUT", "/services/crm/admins", {"super_admin": "u-alice", "admins": []}),
    ("POST", "/upgrade", {"billing_period": "yearly", "seats": 10, "payment_token": "tok_visa"}),
]


@pytest.mark.parametrize(("method", "path", "json"), USER_ROUTES)
def test_a_user_of_another_organization_gets_404_and_never_data(
    suite: Suite, method: str, path: str, json: object
) -> None:
    ours = suite.organization_with(crm=CRM_YEARLY)
    theirs = suite.register(name="Other KK")
    intruder = suite.user(theirs, "u-mallory")  # a token for another organization

    answer = suite.client.open(
        f"/v1/organizations/{ours}{path}",
        method=method,
        json=json,
        headers={**intruder, "Idempotency-Key": "intruder"},
    )

    refused(answer, 404, "organization_not_found")
    text = answer.get_data(as_text=True)
    assert "u-alice" not in text
    assert "Acme" not in text
    assert suite.event_types(ours) == ["OrganizationRegistered", "StandaloneSubscriptionRecorded"]


def test_an_unknown_organization_is_404_for_the_operator_too(suite: Suite) -> None:
    answer = suite.client.get(
        "/v1/organizations/00000000-0000-4000-8000-000000000000/access",
        headers=suite.operator(),
    )

    refused(answer, 404, "organization_not_found")


def test_users_are_refused_the_operators_routes(suite: Suite) -> None:
    org = suite.register()
    user = suite.user(org, "u-owner")

    for answer in (
        suite.client.post(
            "/v1/organizations",
            json={"name": "Mine KK", "country": "JP", "owner_user_id": "u-owner"},
            headers=user,
        ),
        suite.client.put(
            f"/v1/organizations/{org}/services/crm/subscription", json=CRM_YEARLY, headers=user
        ),
        suite.client.post("/v1/test-clock", json={"advance_days": 30}, headers=user),
        suite.client.get("/v1/test-clock", headers=user),
    ):
        refused(answer, 403, "operator_only")
    assert suite.event_types(org) == ["OrganizationRegistered"]
    clock = succeeded(suite.client.get("/v1/test-clock", headers=suite.operator()), 200)
    assert clock["now"] == START.isoformat()


def test_no_token_or_a_bad_token_is_401(suite: Suite) -> None:
    org = suite.register()
    forged = mint_token("another-secret-" + "y" * 40, user_id="u-owner", organization_id=org)
    expired = mint_token(
        SECRET, user_id="u-owner", organization_id=org, issued_at=0, ttl_seconds=60
    )

    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Basic {forged}"},
    ):
        answer = suite.client.get(f"/v1/organizations/{org}/access", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.get_json()["error"]["code"]
        assert set(answer.get_json()["error"]) == {"code", "message", "details", "request_id"}


def test_malformed_json_is_400(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    answer = suite.as_user(
        org,
        "u-alice",
        "POST",
        "/upgrade/quote",
        data="{not json",
        content_type="application/json",
    )

    refused(answer, 400, "malformed_json")


def test_a_body_that_is_not_json_is_415(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    answer = suite.as_user(
        org, "u-alice", "POST", "/upgrade/quote", data="seats=10", content_type="text/plain"
    )

    refused(answer, 415, "unsupported_media_type")


def test_validation_errors_are_422_with_field_level_details(suite: Suite) -> None:
    answer = suite.client.post(
        "/v1/organizations",
        json={"name": "Acme KK", "country": "Japan", "owner_user_id": "u-owner", "extra": 1},
        headers=suite.operator(),
    )

    details = refused(answer, 422, "validation_failed")
    assert set(details["fields"]) >= {"country", "extra"}


def test_a_standalone_plan_is_validated_too(suite: Suite) -> None:
    org = suite.register()

    answer = suite.client.put(
        f"/v1/organizations/{org}/services/crm/subscription",
        json={**CRM_YEARLY, "period_start": "26/11/2026", "billing_period": "weekly"},
        headers=suite.operator(),
    )

    details = refused(answer, 422, "validation_failed")
    assert set(details["fields"]) >= {"period_start", "billing_period"}


def test_errors_are_json_even_for_unknown_routes(suite: Suite) -> None:
    answer = suite.client.get("/v1/no-such-thing", headers=suite.operator())

    assert answer.status_code == 404
    assert answer.mimetype == "application/json"
    assert set(answer.get_json()["error"]) == {"code", "message", "details", "request_id"}


def test_the_test_clock_moves_the_services_time_forward_for_everyone(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org), 201)

    by_days = succeeded(suite.advance(advance_days=2), 200)
    by_seconds = succeeded(suite.advance(advance_seconds=3_600), 200)
    read = succeeded(suite.client.get("/v1/test-clock", headers=suite.operator()), 200)

    assert by_days["now"] == "2026-11-28T09:00:00+00:00"
    assert by_seconds["now"] == "2026-11-28T10:00:00+00:00"
    assert read["now"] == "2026-11-28T10:00:00+00:00"
    assert suite.access(org)["bundle"]["days_left"] == 28


def test_the_health_readiness_and_documentation_paths_need_no_token(suite: Suite) -> None:
    assert suite.client.get("/healthz").status_code == 200
    assert suite.client.get("/readyz").status_code == 200
    assert suite.client.get("/docs").status_code == 200
    spec = succeeded(suite.client.get("/openapi.json"), 200)
    assert "/v1/organizations/{org}/access" in {
        path.replace("{organization_id}", "{org}") for path in spec["paths"]
    }


def test_without_the_test_clock_setting_its_paths_do_not_exist(
    clock: ManualClock, catalog: Catalog
) -> None:
    services = build_services("memory://", clock=clock, catalog=catalog, test_clock=False)
    try:
        client = create_app({"SERVICES": services, "JWT_SECRET": SECRET}).test_client()
        operator = {"Authorization": "Bearer " + mint_token(SECRET, user_id="o", operator=True)}

        moved = client.post("/v1/test-clock", json={"advance_days": 30}, headers=operator)
        read = client.get("/v1/test-clock", headers=operator)
    finally:
        services.close()

    assert moved.status_code == 404
    assert read.status_code == 404
    assert set(moved.get_json()["error"]) == {"code", "message", "details", "request_id"}


@pytest.mark.parametrize("country", ["ZZ", "XX", "AA", "UK"])
def test_a_country_must_be_an_assigned_iso_3166_alpha_2_code(suite: Suite, country: str) -> None:
    org = suite.register()
    registration = suite.client.post(
        "/v1/organizations",
        json={"name": "Acme KK", "country": country, "owner_user_id": "u-owner"},
        headers=suite.operator(),
    )
    contact = {"company_name": "Acme KK", "country": country, "email": "billing@acme.example"}

    quote = suite.quote(org, "u-owner", billing_contact=contact)

    assert set(refused(registration, 422, "validation_failed")["fields"]) == {"country"}
    assert set(refused(quote, 422, "validation_failed")["fields"]["billing_contact"]) == {"country"}
