"""Integration events derived from the log: the envelopes, access.changed, reminders
recorded by the sweep, and the pull feed's pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.bootstrap import Services, build_services
from application.expiry import expire_due_trials, record_due_reminders
from application.projections.read_model import ViewSettings
from application.webhooks.integration import envelope_json
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.errors import InvalidRequest
from domain.integration_events import API_VERSION, integration_event_id
from tests.application.helpers import buy_spec_request, record_crm, register
from tests.hostile_values import HOSTILE_TEXT

SETTINGS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog, view_settings=SETTINGS)
    yield built
    built.close()


def feed(services: Services, **query: Any) -> list[dict[str, Any]]:
    services.webhooks.integration.catch_up()
    page = services.webhooks.integration.page(
        after=query.get("after", 0), types=query.get("types", ()), limit=query.get("limit", 500)
    )
    events: list[dict[str, Any]] = page["events"]
    return events


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_a_trial_story_announces_each_decision_and_every_change_of_access(
    services: Services, clock: ManualClock
) -> None:
    app = services.app
    org = register(app)
    record_crm(app, org)
    app.start_trial(org, by="u-alice")
    clock.advance(timedelta(days=31))
    expire_due_trials(services.app, services.read_model)
    app.cancel_trial(org, by="u-alice")

    recorded, *events = feed(services)
    assert recorded["type"] == "access.changed"  # the standalone plan: crm is paid
    assert [(r["code"], r["edition"]) for r in recorded["data"]["services"]] == [("crm", "paid")]
    assert types(events) == [
        "trial.started",
        "access.changed",
        "trial.expired",
        "access.changed",
        "trial.cancelled",
        "access.changed",
        *["service.downgraded_to_free"] * 7,
    ]
    started = events[0]
    assert started["organization_id"] == str(org)
    assert started["api_version"] == API_VERSION
    assert started["id"] == integration_event_id(started["position"], "trial.started")
    assert started["data"]["carried_over"] == ["crm"]
    assert started["created_at"] == "2026-11-26T09:00:00+00:00"

    at_start = {row["code"]: row for row in events[1]["data"]["services"]}
    assert at_start["crm"]["access"] == "bundle"  # crm moves into the bundle
    assert at_start["crm"]["previous"]["access"] == "standalone"
    assert at_start["desk"]["edition"] == "trial"
    at_expiry = events[3]
    assert at_expiry["position"] == events[2]["position"]
    assert at_expiry["data"]["previous_bundle_state"] == "trial"
    assert at_expiry["data"]["bundle_state"] == "trial_expired"
    assert {row["code"]: row["edition"] for row in at_expiry["data"]["services"]}["desk"] == "none"
    at_cancel = {row["code"]: row for row in events[5]["data"]["services"]}
    assert at_cancel["desk"]["edition"] == "free"
    assert "crm" not in at_cancel  # nothing changed for the purchased service


def test_the_ids_are_stable_when_the_log_is_followed_again(
    services: Services, store_url: str, clock: ManualClock, catalog: Catalog
) -> None:
    if store_url == "memory://":
        pytest.skip("a second process needs a shared store")
    org = register(services.app)
    services.app.start_trial(org, by="u-owner")
    first = feed(services)
    again = build_services(store_url, clock=clock, catalog=catalog, view_settings=SETTINGS)
    try:
        again.webhooks.integration.catch_up()
        assert feed(again) == first
    finally:
        again.close()


def test_the_sweep_records_trial_will_end_three_days_ahead_once(
    services: Services, clock: ManualClock
) -> None:
    org = register(services.app)
    services.app.start_trial(org, by="u-owner")
    clock.advance(timedelta(days=26))
    assert record_due_reminders(services.app, services.webhooks.integration).reminded == []
    clock.advance(timedelta(days=1))
    assert record_due_reminders(services.app, services.webhooks.integration).reminded == [str(org)]
    assert record_due_reminders(services.app, services.webhooks.integration).reminded == []
    will_end = [e for e in feed(services) if e["type"] == "trial.will_end"]
    assert [e["data"]["trial_ends_at"] for e in will_end] == ["2026-12-26T09:00:00+00:00"]
    assert will_end[0]["created_at"] == "2026-12-23T09:00:00+00:00"
    stream = services.app.organization_events(org)["events"]
    assert "TrialEndReminderRecorded" in [e["type"] for e in stream]


def test_an_extension_earns_a_new_reminder_for_the_new_end(
    services: Services, clock: ManualClock
) -> None:
    org = register(services.app)
    services.app.start_trial(org, by="u-owner")
    clock.advance(timedelta(days=27))
    record_due_reminders(services.app, services.webhooks.integration)
    services.app.extend_trial(org, by="u-owner")  # ends 2027-01-10
    clock.advance(timedelta(days=14))  # 4 days before the new end
    assert record_due_reminders(services.app, services.webhooks.integration).reminded == []
    clock.advance(timedelta(days=1))
    record_due_reminders(services.app, services.webhooks.integration)
    ends = [e["data"]["trial_ends_at"] for e in feed(services, types=["trial.will_end"])]
    assert ends == ["2026-12-26T09:00:00+00:00", "2027-01-10T09:00:00+00:00"]
    (extended,) = feed(services, types=["trial.extended"])
    assert extended["organization_id"] == str(org)
    assert extended["created_at"] == "2026-12-23T09:00:00+00:00"
    assert extended["id"] == integration_event_id(extended["position"], "trial.extended")
    assert extended["data"] == {
        "by": "u-owner",
        "previous_end": "2026-12-26T09:00:00+00:00",
        "trial_ends_at": "2027-01-10T09:00:00+00:00",
        "extension_number": 1,
    }


def test_a_yearly_contract_is_reminded_of_its_renewal_seven_days_ahead(
    services: Services, clock: ManualClock
) -> None:
    app = services.app
    org = register(app)
    record_crm(app, org)
    total = buy_spec_request(app, org)
    clock.advance(timedelta(days=365 - 8))
    assert record_due_reminders(services.app, services.webhooks.integration).reminded == []
    clock.advance(timedelta(days=1))
    assert record_due_reminders(services.app, services.webhooks.integration).reminded == [str(org)]
    purchased, upcoming = (
        e for e in feed(services) if e["type"] in ("bundle.purchased", "bundle.renewal_upcoming")
    )
    assert purchased["data"]["total"] == total
    assert upcoming["data"]["renews_at"] == "2027-11-26T09:00:00+00:00"


def _reference_text(envelope: Any) -> str:
    """The envelope's text as ``json`` writes it (what orjson must match)."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def test_the_stored_envelopes_are_the_text_json_writes(
    services: Services, clock: ManualClock
) -> None:
    """orjson writes the envelopes (envelope_json): the same bytes as ``json.dumps``
    for every kind a story announces — decisions, access changes, an invoice with
    its amounts, renewal reminders — and none holds a float (orjson would write
    some exponents differently)."""
    app = services.app
    org = register(app, name="Ærøskøbing «Straße» 株式会社")
    record_crm(app, org)
    app.start_trial(org, by="u-alice")
    clock.advance(timedelta(days=31))
    expire_due_trials(services.app, services.read_model)
    buy_spec_request(app, org)
    clock.advance(timedelta(days=365 - 7))
    record_due_reminders(services.app, services.webhooks.integration)
    services.webhooks.integration.catch_up()
    with services.tables.read() as cursor:
        services.tables.execute(cursor, "SELECT type, envelope FROM integration_events")
        stored = [(row["type"], row["envelope"]) for row in cursor.fetchall()]
    assert {"trial.started", "access.changed", "invoice.issued", "bundle.purchased"} <= {
        kind for kind, _text in stored
    }
    for _kind, text in stored:
        envelope = json.loads(text)
        assert text == _reference_text(envelope)
        assert _floats(envelope) == []


@pytest.mark.parametrize(
    "text",
    [
        "é «» ß 株式会社 😀",
        'quote " backslash \\ slash / <script>&amp;',
        "\u2028\u2029 line and paragraph separators, \u00a0 no-break space, \u007f",
        "".join(chr(c) for c in range(32)),
        *(value.text for value in HOSTILE_TEXT),
    ],
)
def test_envelope_json_writes_what_json_writes(text: str) -> None:
    envelope = {
        "id": "evt_1",
        "position": 2**63 - 1,
        "data": {text: [text, None, True, False, -1, 0, {"nested": text}], "empty": {}},
    }
    assert envelope_json(envelope) == _reference_text(envelope)


def test_envelope_json_leaves_what_orjson_cannot_write_alike_to_json() -> None:
    for envelope in ({"big": 2**64}, {"lone": "\ud800"}, {"keys": {1: "one"}}):
        assert envelope_json(envelope) == _reference_text(envelope)
    with pytest.raises(TypeError):
        envelope_json({"at": datetime(2026, 1, 1, tzinfo=UTC)})  # json refuses it too


def test_the_feed_pages_by_position_and_filters_by_type(services: Services) -> None:
    for n in range(3):
        org = register(services.app, name=f"Org {n}")
        services.app.start_trial(org, by="u-owner")
    everything = feed(services)
    assert types(everything) == ["trial.started", "access.changed"] * 3
    integration = services.webhooks.integration
    first = integration.page(after=0, types=(), limit=3)
    # A page never splits one position's envelopes.
    assert types(first["events"]) == ["trial.started", "access.changed"]
    second = integration.page(after=first["next"], types=(), limit=3)
    assert [e["id"] for e in first["events"] + second["events"]] == [
        e["id"] for e in everything[:4]
    ]
    only = integration.page(after=0, types=("trial.started",), limit=2)
    assert types(only["events"]) == ["trial.started"] * 2
    rest = integration.page(after=only["next"], types=("trial.started",), limit=2)
    assert len(rest["events"]) == 1
    assert rest["next"] is None


def test_unknown_types_are_refused(services: Services) -> None:
    with pytest.raises(InvalidRequest) as refused:
        services.webhooks.integration.page(after=0, types=("trial.begun",), limit=10)
    assert refused.value.code == "unknown_event_type"
