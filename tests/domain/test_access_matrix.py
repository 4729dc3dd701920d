"""The whole access matrix of SPEC §4: every bundle state × every kind of service.

Columns: crm is purchased and usable inside the bundle during a trial; desk is
purchased but reachable only by its standalone URL until the upgrade; every
other service (salesiq, campaigns, …) is not purchased.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

import domain.access_view as access_view_module
from domain.access_view import SERVICE_CELLS_REMEMBERED, access_view, service_cells
from domain.facts import BundleState
from domain.organization import Organization
from tests.domain.builders import (
    CATALOG,
    ORG,
    T0,
    Plan,
    begin_checkout,
    days,
    organization_with,
    upgrade,
)

ALICE = "u-alice"
CRM = Plan("crm", super_admin=ALICE)
DESK = Plan("desk", super_admin=ALICE, amount_paid=60_000)
CATALOG_ORDER = ["crm", "salesiq", "campaigns", "desk", "projects", "social", "survey", "analytics"]
TRIAL_END = T0 + days(30)

AFTER_UPGRADE = "available in the bundle after upgrade"
DECISION = "the trial has ended: upgrade, extend or cancel in the bundle"


def standalone_url(service: str) -> str:
    return f"https://{service}.suite.example/{ORG}"


def bundle_url(service: str) -> str:
    return f"https://crmplus.suite.example/{ORG}/{service}"


# -- organizations in each state, with the moment the view is read -------------


def in_none() -> tuple[Organization, datetime]:
    return organization_with(CRM, DESK), T0


def in_trial() -> tuple[Organization, datetime]:
    org = organization_with(CRM, DESK)
    org.start_trial(by=ALICE, at=T0, catalog=CATALOG)
    return org, T0 + days(1)


def in_trial_expired_recorded() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    assert org.expire_trial(at=TRIAL_END)
    return org, TRIAL_END + timedelta(hours=1)


def in_trial_expired_by_time_only() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    assert org.facts.bundle_state == BundleState.TRIAL  # the sweep has not run
    return org, TRIAL_END


def in_cancelled() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    org.cancel_trial(by=ALICE, at=T0 + days(2), catalog=CATALOG)
    return org, T0 + days(2)


def in_active() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    upgrade(org, by=ALICE, at=T0 + days(3))
    return org, T0 + days(3)


# (edition, contract, access, url, note) for crm, desk and a service not purchased.
Cell = tuple[str, str, str, str | None, str | None]
MATRIX: dict[str, tuple[Callable[[], tuple[Organization, datetime]], str, Cell, Cell, Cell]] = {
    "none": (
        in_none,
        "none",
        ("paid", "standalone", "standalone", standalone_url("crm"), None),
        ("paid", "standalone", "standalone", standalone_url("desk"), None),
        ("none", "none", "none", None, None),
    ),
    "trial": (
        in_trial,
        "trial",
        ("paid", "standalone", "bundle", bundle_url("crm"), None),
        ("paid", "standalone", "standalone", standalone_url("desk"), AFTER_UPGRADE),
        ("trial", "bundle", "bundle", bundle_url("{service}"), None),
    ),
    "trial_expired (recorded)": (
        in_trial_expired_recorded,
        "trial_expired",
        ("paid", "standalone", "standalone", standalone_url("crm"), None),
        ("paid", "standalone", "standalone", standalone_url("desk"), None),
        ("none", "none", "none", None, DECISION),
    ),
    "trial_expired (by time only)": (
        in_trial_expired_by_time_only,
        "trial_expired",
        ("paid", "standalone", "standalone", standalone_url("crm"), None),
        ("paid", "standalone", "standalone", standalone_url("desk"), None),
        ("none", "none", "none", None, DECISION),
    ),
    "cancelled": (
        in_cancelled,
        "cancelled",
        ("paid", "standalone", "standalone", standalone_url("crm"), None),
        ("paid", "standalone", "standalone", standalone_url("desk"), None),
        ("free", "none", "standalone", standalone_url("{service}"), None),
    ),
    "active": (
        in_active,
        "active",
        ("paid", "bundle", "bundle", bundle_url("crm"), None),
        ("paid", "bundle", "bundle", bundle_url("desk"), None),
        ("paid", "bundle", "bundle", bundle_url("{service}"), None),
    ),
}


def cell(service: dict[str, object]) -> Cell:
    return (
        service["edition"],  # type: ignore[return-value]
        service["contract"],
        service["access"],
        service["url"],
        service.get("note"),
    )


@pytest.mark.parametrize("case", list(MATRIX))
def test_every_service_shows_the_cell_of_the_access_matrix_for_its_state(case: str) -> None:
    build, state, crm, desk, not_purchased = MATRIX[case]
    org, now = build()

    view = access_view(org.facts, CATALOG, now).to_dict()

    assert view["organization_id"] == ORG
    assert view["bundle"]["code"] == "crmplus"
    assert view["bundle"]["state"] == state
    services = {s["code"]: s for s in view["services"]}
    assert cell(services["crm"]) == crm
    assert cell(services["desk"]) == desk
    for code in ("salesiq", "campaigns", "projects", "social", "survey", "analytics"):
        expected = tuple(
            value.replace("{service}", code) if isinstance(value, str) else value
            for value in not_purchased
        )
        assert cell(services[code]) == expected, code


@pytest.mark.parametrize("case", list(MATRIX))
def test_the_view_lists_every_catalog_service_in_catalog_order(case: str) -> None:
    org, now = MATRIX[case][0]()
    view = access_view(org.facts, CATALOG, now).to_dict()
    assert [s["code"] for s in view["services"]] == CATALOG_ORDER


def test_a_service_without_a_note_has_no_note_key_at_all() -> None:
    org, now = in_none()
    view = access_view(org.facts, CATALOG, now).to_dict()
    assert all("note" not in s for s in view["services"])


def test_a_trial_reads_as_expired_at_the_exact_moment_it_ends() -> None:
    org, _ = in_trial()
    just_before = access_view(org.facts, CATALOG, TRIAL_END - timedelta(seconds=1))
    at_end = access_view(org.facts, CATALOG, TRIAL_END)
    assert just_before.bundle.state == "trial"
    assert at_end.bundle.state == "trial_expired"


def test_a_standalone_plan_that_has_ended_counts_as_not_purchased() -> None:
    ended = Plan("desk", super_admin=ALICE, start=T0.date() - days(30), end=T0.date())
    org = organization_with(CRM, ended)
    view = access_view(org.facts, CATALOG, T0).to_dict()
    desk = next(s for s in view["services"] if s["code"] == "desk")
    assert cell(desk) == ("none", "none", "none", None, None)


# -- the bundle part of the view: trial end, days left, extensions, actions ------


@pytest.mark.parametrize(
    ("elapsed", "expected_days_left"),
    [
        (timedelta(0), 30),
        (timedelta(hours=1), 30),  # 29 days 23 hours rounds up
        (days(1), 29),
        (days(1) + timedelta(seconds=1), 29),
        (days(29) + timedelta(hours=23, minutes=59), 1),
        (days(30) - timedelta(seconds=1), 1),
        (days(30), 0),
        (days(45), 0),
    ],
)
def test_days_left_counts_whole_days_rounded_up(
    elapsed: timedelta, expected_days_left: int
) -> None:
    org, _ = in_trial()
    view = access_view(org.facts, CATALOG, T0 + elapsed).to_dict()
    assert view["bundle"]["days_left"] == expected_days_left
    assert view["bundle"]["trial_ends_at"] == "2026-12-26T09:00:00+00:00"


def test_without_a_trial_there_is_no_end_and_no_days_left() -> None:
    org, now = in_none()
    bundle = access_view(org.facts, CATALOG, now).to_dict()["bundle"]
    assert bundle["trial_ends_at"] is None
    assert bundle["days_left"] is None
    assert bundle["extensions_used"] == 0


def extended_in_window() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    org.extend_trial(by=ALICE, at=TRIAL_END - days(7), catalog=CATALOG)
    return org, TRIAL_END - days(6)


def extended_then_expired() -> tuple[Organization, datetime]:
    org, _ = extended_in_window()
    return org, TRIAL_END + days(15)


def checkout_pending_during_trial() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    begin_checkout(org, by=ALICE, at=T0 + days(2))
    return org, T0 + days(2)


def checkout_pending_in_the_extension_window() -> tuple[Organization, datetime]:
    org, _ = in_trial()
    begin_checkout(org, by=ALICE, at=TRIAL_END - days(2))
    return org, TRIAL_END - days(2)


def checkout_failed_during_trial() -> tuple[Organization, datetime]:
    org, now = checkout_pending_during_trial()
    org.fail_checkout(checkout_id="chk_0001", reason="card_declined", at=now)
    return org, now


def at(
    build: Callable[[], tuple[Organization, datetime]], moment: datetime
) -> Callable[[], tuple[Organization, datetime]]:
    return lambda: (build()[0], moment)


ACTIONS_BY_SITUATION: list[tuple[str, Callable[[], tuple[Organization, datetime]], list[str]]] = [
    ("no trial yet", in_none, ["start_trial", "upgrade"]),
    ("early in the trial", in_trial, ["cancel_trial", "upgrade"]),
    (
        "one second before the extension window opens",
        at(in_trial, TRIAL_END - days(7) - timedelta(seconds=1)),
        ["cancel_trial", "upgrade"],
    ),
    (
        "exactly seven days before the trial ends",
        at(in_trial, TRIAL_END - days(7)),
        ["extend_trial", "cancel_trial", "upgrade"],
    ),
    (
        "trial expired (recorded)",
        in_trial_expired_recorded,
        ["extend_trial", "cancel_trial", "upgrade"],
    ),
    (
        "trial expired (by time only)",
        in_trial_expired_by_time_only,
        ["extend_trial", "cancel_trial", "upgrade"],
    ),
    ("after the one extension", extended_in_window, ["cancel_trial", "upgrade"]),
    ("extended trial expired", extended_then_expired, ["cancel_trial", "upgrade"]),
    ("cancelled", in_cancelled, ["upgrade"]),
    ("active", in_active, []),
    # A pending checkout freezes the bundle: every action waits for it.
    ("checkout pending during the trial", checkout_pending_during_trial, []),
    (
        "checkout pending in the extension window",
        checkout_pending_in_the_extension_window,
        [],
    ),
    ("checkout failed during the trial", checkout_failed_during_trial, ["cancel_trial", "upgrade"]),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=name) for name, build, expected in ACTIONS_BY_SITUATION],
)
def test_available_actions_are_exactly_what_the_rules_allow_now(
    build: Callable[[], tuple[Organization, datetime]], expected: list[str]
) -> None:
    org, now = build()
    view = access_view(org.facts, CATALOG, now).to_dict()
    assert view["bundle"]["available_actions"] == expected


def test_extensions_used_counts_the_granted_extension() -> None:
    org, now = extended_in_window()
    bundle = access_view(org.facts, CATALOG, now).to_dict()["bundle"]
    assert bundle["extensions_used"] == 1
    assert bundle["trial_ends_at"] == "2027-01-10T09:00:00+00:00"
    assert bundle["days_left"] == 21


def test_remembered_service_cells_are_those_of_their_catalog_and_state() -> None:
    """``service_cells`` remembers its answer (benchmark access_read_http): the
    answer of one catalog, state or set of purchased plans is never another's."""
    elsewhere = dataclasses.replace(
        CATALOG, standalone_url_template="https://{service}.elsewhere.example/{org_id}"
    )
    org, now = in_trial()
    for _ in range(2):  # the second round is served from what the first remembered
        here = access_view(org.facts, CATALOG, now).to_dict()["services"]
        there = access_view(org.facts, elsewhere, now).to_dict()["services"]
        desk_here = next(s for s in here if s["code"] == "desk")
        desk_there = next(s for s in there if s["code"] == "desk")
        assert desk_here["url"] == standalone_url("desk")
        assert desk_there["url"] == f"https://desk.elsewhere.example/{ORG}"
        expired = access_view(org.facts, CATALOG, TRIAL_END).to_dict()["services"]
        access = {s["code"]: s["access"] for s in expired}
        assert access["salesiq"] == "none"  # in the trial it was the bundle's
        assert next(s for s in here if s["code"] == "salesiq")["access"] == "bundle"
    cells = service_cells(CATALOG, ORG, BundleState.TRIAL, frozenset({"crm"}))
    assert [c.code for c in cells] == CATALOG_ORDER
    assert service_cells(CATALOG, ORG, BundleState.TRIAL, frozenset({"crm"})) is cells
    assert next(c for c in cells if c.code == "desk").contract == "bundle"  # desk not purchased


def test_remembered_service_cells_are_bounded() -> None:
    for number in range(SERVICE_CELLS_REMEMBERED + 10):
        service_cells(CATALOG, f"org-{number}", BundleState.NONE, frozenset())
    assert len(access_view_module._service_cells) <= SERVICE_CELLS_REMEMBERED
