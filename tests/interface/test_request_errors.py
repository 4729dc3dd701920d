"""Malformed, mistyped and unexpected requests: always a JSON error, never HTML."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from application.bootstrap import Services
from domain.clock import ManualClock
from interface.app import create_app
from tests.interface.conftest import (
    CRM_YEARLY,
    SECRET,
    Caller,
    error_code,
    operator_headers,
    payload,
    user_headers,
)


@pytest.fixture
def store_url() -> str:
    """Not about storage: the in-memory store is enough (the stories run on every store)."""
    return "memory://"


def test_malformed_json_is_400(caller: Caller) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        data='{"name": "Acme",',
        content_type="application/json",
        headers=operator_headers(),
    )

    assert answer.status_code == 400
    assert error_code(answer) == "malformed_json"


def test_a_body_that_is_not_json_is_415(caller: Caller) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        data="name=Acme&country=JP",
        content_type="application/x-www-form-urlencoded",
        headers=operator_headers(),
    )

    assert answer.status_code == 415
    assert error_code(answer) == "unsupported_media_type"


def test_invalid_fields_are_422_with_field_level_details(caller: Caller) -> None:
    answer = caller.client.post(
        "/v1/organizations",
        json={"name": "", "country": "Japan", "owner_user_id": "u", "color": "red"},
        headers=operator_headers(),
    )

    assert answer.status_code == 422
    assert error_code(answer) == "validation_failed"
    fields = payload(answer)["error"]["details"]["fields"]
    assert set(fields) == {"name", "country", "color"}


def test_a_string_where_a_number_belongs_is_422(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    answer = caller.as_user(
        org,
        "u-alice",
        "POST",
        "/upgrade/quote",
        json={"billing_period": "weekly", "seats": "10", "billing_contact": {}},
    )

    assert answer.status_code == 422
    fields = answer.json["error"]["details"]["fields"]
    assert {"billing_period", "seats", "billing_contact"} <= set(fields)


def test_an_unknown_query_parameter_is_422_not_silently_ignored(caller: Caller) -> None:
    org = caller.register()

    answer = caller.as_user(org, "u-owner", "GET", "/access?min_postion=3")

    assert answer.status_code == 422
    assert error_code(answer) == "validation_failed"
    assert "query.min_postion" in payload(answer)["error"]["details"]["fields"]


def test_an_unknown_add_on_is_named_in_the_details(caller: Caller) -> None:
    org = caller.acme_with_crm_and_desk()

    answer = caller.quote(org, add_ons=[{"code": "teleporter", "quantity": 1}])

    assert answer.status_code == 422
    assert "add_ons.0.code" in answer.json["error"]["details"]["fields"]


def test_an_unknown_organization_is_404(caller: Caller) -> None:
    answer = caller.client.get(
        "/v1/organizations/00000000-0000-0000-0000-000000000001/access",
        headers=operator_headers(),
    )

    assert answer.status_code == 404
    assert error_code(answer) == "organization_not_found"


def test_an_unknown_service_is_404(caller: Caller) -> None:
    org = caller.register()

    answer = caller.client.put(
        f"/v1/organizations/{org}/services/teleport/admins",
        json={"super_admin": "u"},
        headers=operator_headers(),
    )

    assert answer.status_code == 404
    assert error_code(answer) == "unknown_service"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/v1/organizations/not-a-uuid/access", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_and_methods_answer_json(
    client: FlaskClient, method: str, path: str, status: int, code: str
) -> None:
    answer = client.open(path, method=method, headers=operator_headers())

    assert answer.status_code == status
    assert answer.mimetype == "application/json"
    assert error_code(answer) == code


def test_the_test_clock_is_404_unless_enabled(clock: ManualClock) -> None:
    api = create_app({"DATABASE_URL": "memory://", "JWT_SECRET": SECRET, "CLOCK": clock})

    client = api.test_client()
    user = user_headers("00000000-0000-0000-0000-000000000001", "u")

    for headers in (operator_headers(), user, {}):
        for answer in (
            client.get("/v1/test-clock", headers=headers),
            client.post("/v1/test-clock", json={"advance_days": 1}, headers=headers),
        ):
            assert answer.status_code == 404
    assert "/v1/test-clock" not in payload(client.get("/openapi.json"))["paths"]


def test_the_test_clock_only_moves_forward(caller: Caller) -> None:
    backwards = caller.client.post(
        "/v1/test-clock", json={"advance_days": -1}, headers=operator_headers()
    )
    both = caller.client.post(
        "/v1/test-clock",
        json={"advance_days": 1, "advance_seconds": 1},
        headers=operator_headers(),
    )
    seconds = caller.client.post(
        "/v1/test-clock", json={"advance_seconds": 90}, headers=operator_headers()
    )

    assert backwards.status_code == both.status_code == 422
    assert payload(seconds)["now"] == "2026-11-26T09:01:30+00:00"
    assert caller.client.get("/v1/test-clock", headers=operator_headers()).json == seconds.json


def test_the_test_clock_can_be_frozen_and_set_over_http(caller: Caller) -> None:
    clock_path = "/v1/test-clock"
    frozen = caller.client.post(clock_path, json={"frozen": True}, headers=operator_headers())
    jumped = caller.client.post(
        clock_path, json={"set_to": "2026-12-24T00:00:00Z"}, headers=operator_headers()
    )
    org = caller.register()
    backwards = caller.client.post(
        clock_path, json={"set_to": "2026-12-23T00:00:00Z"}, headers=operator_headers()
    )

    assert payload(frozen)["frozen"] is True
    assert payload(jumped) == {
        "now": "2026-12-24T00:00:00+00:00",
        "frozen": True,
        "offset_seconds": payload(jumped)["offset_seconds"],
    }
    assert (backwards.status_code, error_code(backwards)) == (409, "test_clock_backwards")
    assert caller.access(org, "u-owner")["bundle"]["state"] == "none"
    assert payload(caller.client.get(clock_path, headers=operator_headers()))["now"] == (
        "2026-12-24T00:00:00+00:00"
    )


def test_advancing_the_test_clock_thousands_of_years_is_refused_and_nothing_breaks(
    caller: Caller,
) -> None:
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)
    answers = []
    for _ in range(800):  # 10 years a call: the year 9000 is reached well before
        answer = caller.client.post(
            "/v1/test-clock", json={"advance_days": 3650}, headers=operator_headers()
        )
        answers.append(answer.status_code)
        if answer.status_code != 200:
            break

    assert answers[-1] == 422
    assert error_code(answer) == "validation_failed"
    assert set(answers[:-1]) == {200}
    assert caller.access(org)["bundle"]["state"] == "none"
    assert caller.client.get("/readyz").status_code == 200


class ExplodingGateway:
    name = "exploding"

    def __init__(self, *_args: object) -> None:
        pass

    def charge(self, *_args: object) -> object:
        raise RuntimeError("secret internals: connection string postgres://admin:hunter2@db")

    def lookup(self, _key: str) -> None:
        return None

    def void(self, _key: str) -> object:
        raise RuntimeError("not reached")


def test_an_unexpected_error_is_500_json_with_the_trace_only_in_the_log(
    store_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    api = create_app(
        {
            "DATABASE_URL": store_url,
            "JWT_SECRET": SECRET,
            "CLOCK": clock,
            "GATEWAY_FACTORY": ExplodingGateway,
        }
    )
    caller = Caller(api.test_client())
    org = caller.register()
    caller.subscribe(
        org,
        "crm",
        {
            "seats": 1,
            "billing_period": "monthly",
            "amount_paid": 1,
            "period_start": "2026-11-01",
            "period_end": "2026-12-01",
            "super_admin": "u-alice",
        },
    )

    with caplog.at_level(logging.ERROR, logger="suitesub.api"):
        answer = caller.upgrade(org, "key-1")

    assert answer.status_code == 500
    assert error_code(answer) == "internal_error"
    text = answer.get_data(as_text=True)
    assert "hunter2" not in text
    assert "Traceback" not in text
    request_id = answer.json["error"]["request_id"]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
    services: Services = api.extensions["suitesub"]
    services.close()


def test_health_and_readiness_need_no_token(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    assert payload(client.get("/readyz"))["status"] == "ready"


def test_the_docs_page_is_served_without_a_cdn(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)

    assert "/docs/assets/swagger-ui-bundle.js" in page
    assert "http" not in page.replace("/openapi.json", "")
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert payload(client.get("/openapi.json"))["openapi"].startswith("3.")
