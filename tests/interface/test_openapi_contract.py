"""Schemathesis against /openapi.json, in-process (WSGI), with every check.

The organization in every path is a real one (registered with a running CRM
plan), so the generated requests reach the rules, not only the 404. Tokens
follow the route: operator routes get an operator token, the rest a token of
that organization's CRM super admin.

Two statuses are added to what schemathesis accepts for schema-valid data,
because the schema cannot express the rules behind them: 402 (whether a
payment token is good is the gateway's call) and 422 (business rules such as
known add-on codes, seats against current licenses, dates in order).
"""

from __future__ import annotations

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
#: The organization the fixture registered (schemathesis copies the schema object).
_SEEDED: dict[str, str] = {}


@pytest.fixture
def api_schema() -> Iterator[schemathesis.BaseSchema]:
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
                    "expected-statuses": ["2xx", "401", "402", "403", "404", "409", "422"]
                }
            },
        }
    )
    schema = schemathesis.openapi.from_wsgi("/openapi.json", api, config=config)
    _SEEDED["organization_id"] = org
    yield schema
    services.close()


def _token_for(method: str, path: str, org: str) -> str:
    operator_only = (
        path == "/v1/organizations" or path.endswith("/subscription") or (path == "/v1/test-clock")
    )
    if operator_only:
        return mint_token(SECRET, user_id="ops-1", operator=True)
    return mint_token(SECRET, user_id="u-alice", organization_id=org)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_honours_its_openapi_contract(case: schemathesis.Case[Any]) -> None:
    org = _SEEDED["organization_id"]
    token = _token_for(case.method, case.path, org)
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"})


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
