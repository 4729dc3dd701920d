"""SPEC §4 access view table and §10 view shape, state by state.

Reference article: during the trial CRM and SalesIQ already bought are used
inside CRM Plus; the other bought services are not usable there and are
reached by their usual standalone URL until the upgrade; after a cancel the
services not bought move to their free editions, reached by standalone URL.
"""

from __future__ import annotations

from typing import Any

from tests.acceptance.conftest import (
    CATALOG_ORDER,
    CRM_YEARLY,
    DESK_MONTHLY,
    Suite,
    bundle_url,
    plan,
    standalone_url,
    succeeded,
)

SALESIQ_YEARLY = plan(
    super_admin="u-alice", start="2026-06-01", end="2027-06-01", amount_paid=60_000
)
DESK_YEARLY = plan(super_admin="u-alice", start="2026-06-01", end="2027-06-01", amount_paid=36_000)
NOT_PURCHASED = ["campaigns", "projects", "social", "survey", "analytics"]


def acme(suite: Suite) -> str:
    """CRM, SalesIQ and Desk bought and running, all administered by Alice."""
    return suite.organization_with(crm=CRM_YEARLY, salesiq=SALESIQ_YEARLY, desk=DESK_YEARLY)


def cell(service: dict[str, Any]) -> tuple[str, str, str, str | None]:
    return (service["edition"], service["contract"], service["access"], service["url"])


def test_the_view_has_exactly_the_shape_of_spec_section_10(suite: Suite) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    view = suite.access(org)

    assert set(view) == {"organization_id", "version", "position", "bundle", "services"}
    assert view["organization_id"] == org
    assert isinstance(view["version"], int)
    assert isinstance(view["position"], int)
    assert view["bundle"] == {
        "code": "crmplus",
        "state": "trial",
        "trial_ends_at": "2026-12-26T09:00:00+00:00",
        "days_left": 30,
        "extensions_used": 0,
        "available_actions": ["cancel_trial", "upgrade"],
    }
    assert [service["code"] for service in view["services"]] == CATALOG_ORDER
    for service in view["services"]:
        assert set(service) - {"note"} == {"code", "edition", "contract", "access", "url"}


def test_before_any_trial_bought_services_are_standalone_and_the_rest_is_none(
    suite: Suite,
) -> None:
    org = acme(suite)

    view = suite.access(org)
    services = {service["code"]: service for service in view["services"]}

    assert view["bundle"]["state"] == "none"
    assert view["bundle"]["extensions_used"] == 0
    assert view["bundle"]["available_actions"] == ["start_trial", "upgrade"]
    for bought in ("crm", "salesiq", "desk"):
        assert cell(services[bought]) == (
            "paid",
            "standalone",
            "standalone",
            standalone_url(bought, org),
        )
    for code in NOT_PURCHASED:
        assert services[code]["edition"] == "none"
        assert services[code]["contract"] == "none"
        assert services[code]["access"] == "none"


def test_during_the_trial_crm_and_salesiq_are_used_inside_the_bundle(suite: Suite) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    services = suite.services(org)

    for code in ("crm", "salesiq"):
        assert cell(services[code]) == ("paid", "standalone", "bundle", bundle_url(code, org))
        assert "note" not in services[code]


def test_during_the_trial_other_bought_services_stay_on_their_standalone_url_until_upgrade(
    suite: Suite,
) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    desk = suite.services(org)["desk"]

    assert cell(desk) == ("paid", "standalone", "standalone", standalone_url("desk", org))
    assert desk["note"] == "available in the bundle after upgrade"


def test_during_the_trial_services_not_bought_are_trial_editions_in_the_bundle(
    suite: Suite,
) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    services = suite.services(org)

    for code in NOT_PURCHASED:
        assert cell(services[code]) == ("trial", "bundle", "bundle", bundle_url(code, org))


def test_days_left_counts_whole_days_rounded_up(suite: Suite) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    suite.advance_days(0.5)
    half_a_day_in = suite.access(org)["bundle"]["days_left"]
    suite.advance(advance_seconds=29 * 86_400 + 43_200 - 1)  # a second before the end
    last_second = suite.access(org)["bundle"]

    assert half_a_day_in == 30
    assert last_second["state"] == "trial"
    assert last_second["days_left"] == 1


def test_the_extension_becomes_available_seven_days_before_the_end(suite: Suite) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    suite.advance_days(22)
    eight_days_before = suite.access(org)["bundle"]["available_actions"]
    suite.advance_days(1)
    seven_days_before = suite.access(org)["bundle"]["available_actions"]

    assert eight_days_before == ["cancel_trial", "upgrade"]
    assert seven_days_before == ["extend_trial", "cancel_trial", "upgrade"]


def test_a_trial_past_its_end_is_expired_in_the_view_at_once_with_the_decision_screen(
    suite: Suite,
) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)

    suite.advance_days(30)
    view = suite.access(org)
    services = {service["code"]: service for service in view["services"]}

    assert "TrialExpired" not in suite.event_types(org)  # no sweep has run
    assert view["bundle"]["state"] == "trial_expired"
    assert view["bundle"]["trial_ends_at"] == "2026-12-26T09:00:00+00:00"
    assert view["bundle"]["available_actions"] == ["extend_trial", "cancel_trial", "upgrade"]
    for bought in ("crm", "salesiq", "desk"):
        assert cell(services[bought]) == (
            "paid",
            "standalone",
            "standalone",
            standalone_url(bought, org),
        )
    for code in NOT_PURCHASED:
        assert services[code]["edition"] == "none"
        assert services[code]["contract"] == "none"
        assert services[code]["access"] == "none"


def test_after_a_cancel_services_not_bought_move_to_free_editions_on_their_standalone_url(
    suite: Suite,
) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)
    succeeded(suite.cancel_trial(org), 200)

    view = suite.access(org)
    services = {service["code"]: service for service in view["services"]}

    assert view["bundle"]["state"] == "cancelled"
    assert view["bundle"]["available_actions"] == ["upgrade"]
    for bought in ("crm", "salesiq", "desk"):
        assert cell(services[bought]) == (
            "paid",
            "standalone",
            "standalone",
            standalone_url(bought, org),
        )
    for code in NOT_PURCHASED:
        assert services[code]["edition"] == "free"
        assert services[code]["access"] == "standalone"
        assert services[code]["url"] == standalone_url(code, org)


def test_after_the_upgrade_every_service_is_paid_in_the_bundle_on_its_bundle_url(
    suite: Suite,
) -> None:
    org = acme(suite)
    succeeded(suite.start_trial(org), 201)
    succeeded(suite.upgrade(org, "buy-1"), 201)

    view = suite.access(org)

    assert view["bundle"]["state"] == "active"
    assert view["bundle"]["available_actions"] == []
    assert [service["code"] for service in view["services"]] == CATALOG_ORDER
    for service in view["services"]:
        assert cell(service) == ("paid", "bundle", "bundle", bundle_url(service["code"], org))
        assert "note" not in service


def test_operators_read_the_same_view_as_users(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)

    by_operator = succeeded(
        suite.client.get(f"/v1/organizations/{org}/access", headers=suite.operator()), 200
    )

    assert by_operator == suite.access(org)
