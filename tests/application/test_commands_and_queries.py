"""Every command and query of the application, over the in-memory and SQLite stores."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

import pytest

from application.errors import OrganizationNotFound
from application.service import SuiteSubscriptions
from domain.clock import ManualClock
from domain.errors import InvalidRequest, NotAllowed, NotFound, StateConflict
from tests.application.helpers import (
    SPEC_REQUEST,
    event_types,
    organization_in_trial,
    record_crm,
    record_desk,
    register,
)


def test_registering_answers_the_new_version_and_log_position(app: SuiteSubscriptions) -> None:
    first = app.register_organization(name="Acme", country="JP", owner_user_id="u-owner")
    second = app.register_organization(name="Beta", country="FR", owner_user_id="u-b")
    assert first.version == 1
    assert first.changed
    assert isinstance(first.position, int)
    assert second.position is not None
    assert second.position > first.position
    assert first.to_dict() == {
        "organization_id": first.organization_id,
        "version": 1,
        "position": first.position,
    }


def test_registering_with_a_chosen_id_keeps_it(app: SuiteSubscriptions) -> None:
    chosen = uuid4()
    result = app.register_organization(
        name="Acme", country="JP", owner_user_id="u-owner", organization_id=chosen
    )
    assert result.organization_id == str(chosen)
    assert app.facts(chosen).name == "Acme"


def test_an_invalid_organization_is_refused_field_by_field(app: SuiteSubscriptions) -> None:
    with pytest.raises(InvalidRequest) as refused:
        app.register_organization(name=" ", country="Japan", owner_user_id="")
    assert set(refused.value.details["fields"]) == {"name", "country", "owner_user_id"}


@pytest.mark.parametrize(
    "call",
    [
        lambda app, org: app.start_trial(org, by="u"),
        lambda app, org: app.extend_trial(org, by="u"),
        lambda app, org: app.cancel_trial(org, by="u"),
        lambda app, org: app.expire_trial(org),
        lambda app, org: app.access(org),
        lambda app, org: app.trial_eligibility(org, "u"),
        lambda app, org: app.quote(org, SPEC_REQUEST),
        lambda app, org: app.organization_events(org),
    ],
    ids=["start", "extend", "cancel", "expire", "access", "eligibility", "quote", "events"],
)
def test_an_unknown_organization_is_not_found(app: SuiteSubscriptions, call: object) -> None:
    with pytest.raises(OrganizationNotFound) as missing:
        call(app, uuid4())  # type: ignore[operator]
    assert missing.value.code == "organization_not_found"
    assert isinstance(missing.value, NotFound)


# -- standalone plans and admins ------------------------------------------------------


def test_recording_a_standalone_plan_sets_its_admins(app: SuiteSubscriptions) -> None:
    org = register(app)
    app.record_standalone_subscription(
        org,
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 3, 6),
        period_end=date(2027, 3, 6),
        super_admin="u-alice",
        admins=["u-carol", "u-carol", ""],
        by="operator-1",
    )
    facts = app.facts(org)
    (plan,) = facts.subscriptions
    assert (plan.service, plan.seats, plan.amount_paid, plan.total_days) == ("crm", 5, 120_000, 365)
    admins = facts.admins_of("crm")
    assert admins is not None
    assert (admins.super_admin, admins.admins) == ("u-alice", ("u-carol",))


def test_a_plan_recorded_again_replaces_the_earlier_one(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_crm(app, org)
    record_crm(app, org, super_admin="u-zed")
    facts = app.facts(org)
    assert len(facts.subscriptions) == 1
    assert facts.admins_of("crm").super_admin == "u-zed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seats": 0}, "seats"),
        ({"billing_period": "weekly"}, "billing_period"),
        ({"amount_paid": -1}, "amount_paid"),
        ({"period_end": date(2026, 3, 6)}, "period_end"),
        ({"super_admin": " "}, "super_admin"),
    ],
)
def test_an_invalid_standalone_plan_is_refused_naming_the_field(
    app: SuiteSubscriptions, changes: dict[str, object], field: str
) -> None:
    org = register(app)
    plan: dict[str, object] = {
        "service": "crm",
        "seats": 5,
        "billing_period": "yearly",
        "amount_paid": 120_000,
        "period_start": date(2026, 3, 6),
        "period_end": date(2027, 3, 6),
        "super_admin": "u-alice",
        "admins": [],
        **changes,
    }
    with pytest.raises(InvalidRequest) as refused:
        app.record_standalone_subscription(org, **plan)  # type: ignore[arg-type]
    assert list(refused.value.details["fields"]) == [field]
    assert app.facts(org).subscriptions == ()


def test_a_plan_for_an_unknown_service_is_not_found(app: SuiteSubscriptions) -> None:
    org = register(app)
    with pytest.raises(NotFound) as refused:
        app.record_standalone_subscription(
            org,
            service="mail",
            seats=1,
            billing_period="monthly",
            amount_paid=1,
            period_start=date(2026, 1, 1),
            period_end=date(2026, 2, 1),
            super_admin="u",
            admins=[],
        )
    assert refused.value.code == "unknown_service"
    assert refused.value.details["service"] == "mail"


def test_the_super_admin_of_a_service_may_hand_it_over(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_desk(app, org)
    result = app.change_service_admins(
        org, service="desk", super_admin="u-alice", admins=["u-bob"], by="u-bob", by_operator=False
    )
    assert result.version == 3
    admins = app.facts(org).admins_of("desk")
    assert admins is not None
    assert (admins.super_admin, admins.admins) == ("u-alice", ("u-bob",))


def test_only_the_super_admin_or_an_operator_changes_admins(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_desk(app, org)
    with pytest.raises(NotAllowed) as refused:
        app.change_service_admins(
            org, service="desk", super_admin="u-eve", admins=[], by="u-eve", by_operator=False
        )
    assert refused.value.code == "not_service_super_admin"
    app.change_service_admins(
        org, service="desk", super_admin="u-eve", admins=[], by="op", by_operator=True
    )
    assert app.facts(org).admins_of("desk").super_admin == "u-eve"  # type: ignore[union-attr]


# -- trial eligibility --------------------------------------------------------------------


def test_eligibility_says_who_lacks_rights_where_and_who_can_fix_it(
    app: SuiteSubscriptions,
) -> None:
    org = register(app)
    record_crm(app, org)
    record_desk(app, org)
    assert app.trial_eligibility(org, "u-alice") == {
        "organization_id": str(org),
        "user_id": "u-alice",
        "eligible": False,
        "reason": "trial_initiator_cannot_carry_over",
        "state": "none",
        "missing_admin_rights": ["desk"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob"},
        "carried_over": ["crm", "desk"],
        "usable_in_bundle": ["crm"],
        "standalone_only": ["desk"],
        "trial_services": ["salesiq", "campaigns", "projects", "social", "survey", "analytics"],
        "trial_days": 30,
        "version": 3,
    }


def test_eligibility_of_a_user_with_every_right(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_crm(app, org)
    answer = app.trial_eligibility(org, "u-alice")
    assert answer["eligible"] is True
    assert answer["reason"] is None
    assert answer["missing_admin_rights"] == []
    assert answer["carried_over"] == ["crm"]


def test_eligibility_after_the_one_trial_names_the_conflict(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    answer = app.trial_eligibility(org, "u-alice")
    assert (answer["eligible"], answer["reason"], answer["state"]) == (
        False,
        "trial_already_used",
        "trial",
    )


def test_asking_for_eligibility_records_nothing(app: SuiteSubscriptions) -> None:
    org = register(app)
    app.trial_eligibility(org, "u-stranger")
    assert app.facts(org).bundle_state == "none"
    assert event_types(app, org) == ["OrganizationRegistered"]


# -- trial commands -----------------------------------------------------------------------------


def test_trial_commands_move_the_state_and_the_version(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = register(app)
    record_crm(app, org)
    started = app.start_trial(org, by="u-alice")
    assert started.version == 3
    clock.advance(timedelta(days=30))
    expired = app.expire_trial(org)
    assert (expired.version, expired.changed) == (4, True)
    extended = app.extend_trial(org, by="u-alice")
    assert extended.version == 5
    cancelled = app.cancel_trial(org, by="u-alice")
    assert cancelled.version == 5 + 1 + 7  # TrialCancelled + one downgrade per free service
    assert app.facts(org).cancel_reason == "user_request"
    assert event_types(app, org)[-8:] == ["TrialCancelled"] + ["ServiceDowngradedToFree"] * 7


def test_expiring_a_trial_that_is_not_due_changes_nothing(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    result = app.expire_trial(org)
    assert (result.version, result.changed, result.position) == (3, False, None)


def test_a_refused_command_records_nothing(app: SuiteSubscriptions) -> None:
    org = organization_in_trial(app)
    with pytest.raises(StateConflict) as refused:
        app.start_trial(org, by="u-alice")
    assert refused.value.code == "trial_already_used"
    with pytest.raises(StateConflict) as too_early:
        app.extend_trial(org, by="u-alice")
    assert too_early.value.code == "trial_not_extendable"
    assert app.get_organization(org).version == 3


# -- access and quote ---------------------------------------------------------------------------


def test_the_access_view_carries_the_version_and_the_log_position(
    app: SuiteSubscriptions,
) -> None:
    org = register(app)
    record_crm(app, org)
    started = app.start_trial(org, by="u-alice")
    view = app.access(org)
    assert view["organization_id"] == str(org)
    assert view["version"] == started.version
    assert view["position"] == started.position
    assert view["bundle"] == {
        "code": "crmplus",
        "state": "trial",
        "trial_ends_at": "2026-12-26T09:00:00+00:00",
        "days_left": 30,
        "extensions_used": 0,
        "available_actions": ["cancel_trial", "upgrade"],
    }
    crm = view["services"][0]
    assert crm == {
        "code": "crm",
        "edition": "paid",
        "contract": "standalone",
        "access": "bundle",
        "url": f"https://crmplus.suite.example/{org}/crm",
    }


def test_a_quote_prices_the_spec_example_and_records_nothing(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_crm(app, org)
    quote = app.quote(org, SPEC_REQUEST)
    assert (quote.subtotal, quote.credit, quote.tax, quote.total) == (
        744_000,
        32_876,
        71_112,
        782_236,
    )
    assert app.get_organization(org).version == 2


def test_a_quote_checks_the_seats_against_the_running_plans(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_crm(app, org)
    with pytest.raises(InvalidRequest) as refused:
        app.quote(org, type(SPEC_REQUEST)("yearly", 4))
    assert refused.value.code == "seats_below_current_licenses"


# -- the stream ----------------------------------------------------------------


def test_the_stream_is_paged_oldest_first_with_positions(app: SuiteSubscriptions) -> None:
    org = register(app)
    other = register(app, "Other")
    record_crm(app, org)
    record_crm(app, other)
    app.start_trial(org, by="u-alice")

    first = app.organization_events(org, limit=2)
    assert [e["type"] for e in first["events"]] == [
        "OrganizationRegistered",
        "StandaloneSubscriptionRecorded",
    ]
    assert first["next"] == first["events"][-1]["position"]
    second = app.organization_events(org, after=first["next"], limit=2)
    assert [e["type"] for e in second["events"]] == ["TrialStarted"]
    assert second["next"] is None

    everything = app.organization_events(org)
    positions = [e["position"] for e in everything["events"]]
    assert positions == sorted(positions)
    assert [e["version"] for e in everything["events"]] == [1, 2, 3]
    assert {e["organization_id"] for e in everything["events"]} == {str(org)}
    assert everything["next"] is None


def test_a_page_that_ends_exactly_at_the_end_has_no_next(app: SuiteSubscriptions) -> None:
    org = register(app)
    record_crm(app, org)
    page = app.organization_events(org, limit=2)
    assert len(page["events"]) == 2
    assert page["next"] is None


def test_each_event_shows_its_type_business_time_data_and_link(
    app: SuiteSubscriptions, clock: ManualClock
) -> None:
    org = register(app)
    record_crm(app, org)
    clock.advance(timedelta(hours=3))
    app.start_trial(org, by="u-alice")
    started = app.organization_events(org, after=0)["events"][-1]
    assert started["type"] == "TrialStarted"
    assert started["at"] == "2026-11-26T12:00:00+00:00"
    assert started["data"] == {
        "by": "u-alice",
        "ends_at": "2026-12-26T12:00:00+00:00",
        "carried_over": ["crm"],
        "usable_in_bundle": ["crm"],
        "standalone_only": [],
        "trial_services": [
            "salesiq",
            "campaigns",
            "desk",
            "projects",
            "social",
            "survey",
            "analytics",
        ],
    }
    assert len(started["chain"]) == 64
    assert started["chain"] == app.facts(org).chain_head


def test_the_stream_of_an_organization_skips_other_organizations_events(
    app: SuiteSubscriptions,
) -> None:
    org = register(app)
    for index in range(30):
        register(app, f"Noise {index}")
    record_crm(app, org)
    registered = app.organization_events(org, limit=1)
    page = app.organization_events(org, after=registered["next"], limit=5)
    assert [e["type"] for e in page["events"]] == ["StandaloneSubscriptionRecorded"]


@pytest.mark.parametrize(
    ("after", "limit", "field"),
    [(0, 0, "limit"), (0, -2, "limit"), (-1, 10, "after")],
    ids=["empty page", "negative page", "negative position"],
)
def test_a_page_that_cannot_be_served_is_refused(
    app: SuiteSubscriptions, after: int, limit: int, field: str
) -> None:
    org = organization_in_trial(app)
    with pytest.raises(InvalidRequest) as refused:
        app.organization_events(org, after=after, limit=limit)
    assert list(refused.value.details["fields"]) == [field]
