"""Schemathesis against /openapi.json, in-process (WSGI), with every check.

The organization in every path is a real one (registered with a running CRM
plan), so the generated requests reach the rules, not only the 404. The API
is called twice over: with an operator token on every route, and with a
token of that organization's CRM super admin on every route (operator-only
routes then answer 403, as the document says).

A request the document calls valid must be accepted: schemathesis' own
statuses for that (2xx, 401, 403, 404, 409...) plus 402, because whether a
payment token is good is the gateway's call. A 422 is accepted only for the
rules the document cannot state, each named below by its code and field
(:data:`RULES_THE_SCHEMA_CANNOT_STATE`); any other 422 — a country the
domain refuses, a text the guard refuses — is a finding: the document must
say so (an enum, a ``pattern``, a bound).

Every case sends a fresh ``Idempotency-Key``, as the document asks ("a new
random value per request"): schemathesis would otherwise reuse one key for
different requests, which the API rightly refuses (422
``idempotency_key_reused``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from application.bootstrap import Services, build_services
from domain.clock import ManualClock
from interface.app import create_app
from interface.auth import mint_token
from tests.conftest import T0
from tests.interface.conftest import CRM_YEARLY, SECRET, Caller

MAX_EXAMPLES = 12
#: The organization each fixture registered (schemathesis copies the schema object).
_SEEDED: dict[str, str] = {}

#: (operation, error code, the fields it names: a regular expression, or None
#: for a refusal that names none) — the only 422s a schema-valid request may get.
RULES_THE_SCHEMA_CANNOT_STATE: tuple[tuple[str, str, str | None], ...] = (
    # Anywhere ("*"): a Luhn-valid 13-19 digit run under any separators, also
    # spread over several fields (domain/card_numbers.py), is card data.
    ("*", "raw_card_data_not_accepted", None),
    # The log's end moves: a position beyond it cannot be a static bound.
    ("GET /v1/organizations/{organization_id}/access", "min_position_ahead_of_log", None),
    ("GET /v1/organizations/{organization_id}/subscription", "min_position_ahead_of_log", None),
    ("GET /v1/organizations", "min_position_ahead_of_log", None),
    ("GET /v1/organizations/{organization_id}/invoices", "min_position_ahead_of_log", None),
    (
        "GET /v1/organizations/{organization_id}/invoices/{number}",
        "min_position_ahead_of_log",
        None,
    ),
    # A cursor is the number of an invoice of this organization: the view's data.
    ("GET /v1/organizations/{organization_id}/invoices", "unknown_invoice_cursor", None),
    # Seats against the licenses the organization's plans hold.
    (
        "POST /v1/organizations/{organization_id}/upgrade/quote",
        "seats_below_current_licenses",
        None,
    ),
    ("POST /v1/organizations/{organization_id}/upgrade", "seats_below_current_licenses", None),
    # Add-on codes come from the catalog (replaceable data); no code twice.
    (
        "POST /v1/organizations/{organization_id}/upgrade/quote",
        "validation_failed",
        r"add_ons\.\d+\.code",
    ),
    (
        "POST /v1/organizations/{organization_id}/upgrade",
        "validation_failed",
        r"add_ons\.\d+\.code",
    ),
    # Whether a webhook URL's host resolves to public addresses only is DNS's
    # answer, not the document's (docs/webhooks.md "URLs").
    ("POST /v1/webhook-endpoints", "webhook_url_not_allowed", None),
    ("PATCH /v1/webhook-endpoints/{endpoint_id}", "webhook_url_not_allowed", None),
    # `types` is a comma-separated list of the documented names.
    ("GET /v1/events", "unknown_event_type", None),
    # A plan's end after its start: a rule between two fields.
    (
        "PUT /v1/organizations/{organization_id}/services/{service}/subscription",
        "validation_failed",
        r"period_end",
    ),
)


def _allowed_refusal(operation: str, body: Any) -> bool:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = error.get("code")
    named = list((error.get("details") or {}).get("fields") or {})
    for rule_operation, rule_code, rule_fields in RULES_THE_SCHEMA_CANNOT_STATE:
        if rule_operation not in ("*", operation) or rule_code != code:
            continue
        if rule_fields is None or (
            named and all(re.fullmatch(rule_fields, field) for field in named)
        ):
            return True
    return False


@schemathesis.check
def refused_only_by_rules_the_schema_cannot_state(
    ctx: Any, response: Any, case: schemathesis.Case[Any]
) -> bool | None:
    """A schema-valid request answered 422 must be refused by a listed rule."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code != 422:
        return None
    body = response.json()
    if not _allowed_refusal(f"{case.method.upper()} {case.path}", body):
        raise AssertionError(f"Schema-valid request refused with 422: {body}")
    return None


def _seeded_schema(token_kind: str) -> Iterator[schemathesis.BaseSchema]:
    services: Services = build_services("memory://", clock=ManualClock(T0), test_clock=True)
    api = create_app({"SERVICES": services, "JWT_SECRET": SECRET})
    caller = Caller(api.test_client())
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)
    config = schemathesis.Config.from_dict(
        {
            "parameters": {"organization_id": org},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "checks": {
                "positive_data_acceptance": {
                    # 422 here is decided by refused_only_by_rules_the_schema_cannot_state.
                    "expected-statuses": ["2xx", "401", "402", "403", "404", "409", "422"]
                }
            },
        }
    )
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api, config=config)
    _SEEDED[token_kind] = org
    yield schema
    services.close()


@pytest.fixture
def operator_schema() -> Iterator[schemathesis.BaseSchema]:
    yield from _seeded_schema("operator")


@pytest.fixture
def user_schema() -> Iterator[schemathesis.BaseSchema]:
    yield from _seeded_schema("user")


def _mutates_authorization(case: schemathesis.Case[Any]) -> bool:
    """A negative case about the Authorization header: this test always sends a real
    token (authentication has its own tests, test_auth_and_tenancy.py)."""
    data = None if case.meta is None else case.meta.phase.data
    return "Authorization" in str(getattr(data, "description", ""))


def _call(case: schemathesis.Case[Any], token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if not positive and _mutates_authorization(case):
        return
    if positive and case.headers and "Idempotency-Key" in case.headers:
        # Only a valid key is replaced (a negative case may be testing the key itself).
        headers["Idempotency-Key"] = str(uuid.uuid4())
    case.call_and_validate(headers=headers)


with_operator = schemathesis.pytest.from_fixture("operator_schema")
with_user = schemathesis.pytest.from_fixture("user_schema")
EXAMPLES = settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
)


@with_operator.parametrize()
@EXAMPLES
def test_the_api_honours_its_openapi_contract_for_an_operator(
    case: schemathesis.Case[Any],
) -> None:
    _call(case, mint_token(SECRET, user_id="ops-1", operator=True))


@with_user.parametrize()
@EXAMPLES
def test_the_api_honours_its_openapi_contract_for_a_user_of_the_organization(
    case: schemathesis.Case[Any],
) -> None:
    org = _SEEDED["user"]
    _call(case, mint_token(SECRET, user_id="u-alice", organization_id=org))


def test_the_docs_page_shows_markdown_not_restructuredtext() -> None:
    """Swagger UI renders descriptions as Markdown: reST's ``double backticks``
    and roles would show as literal noise on the /docs page."""
    services: Services = build_services("memory://", clock=ManualClock(T0), test_clock=True)
    api = create_app({"SERVICES": services, "JWT_SECRET": SECRET})
    document = api.test_client().get("/openapi.json").get_data(as_text=True)
    services.close()

    assert "``" not in document
    assert ":class:" not in document
    assert ":func:" not in document
