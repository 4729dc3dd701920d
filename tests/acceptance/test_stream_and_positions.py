"""SPEC §3, §6 and §10: the stream over HTTP, versions, positions, read-your-writes."""

from __future__ import annotations

from typing import Any

from tests.acceptance.conftest import (
    CRM_YEARLY,
    DESK_MONTHLY,
    Suite,
    succeeded,
)


def test_registering_answers_201_with_the_new_id_version_and_position(suite: Suite) -> None:
    answer = suite.client.post(
        "/v1/organizations",
        json={"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"},
        headers=suite.operator(),
    )

    registered = succeeded(answer, 201)
    assert isinstance(registered["id"], str)
    assert registered["version"] == 1
    assert isinstance(registered["position"], int)
    first = suite.events(registered["id"], "u-owner")["events"][0]
    assert first["type"] == "OrganizationRegistered"
    assert first["data"]["name"] == "Acme KK"
    assert first["data"]["country"] == "JP"
    assert first["data"]["owner_user_id"] == "u-owner"


def test_every_command_answers_the_organizations_new_version_and_log_position(
    suite: Suite,
) -> None:
    org = suite.register()
    answers: list[Any] = [
        suite.record_plan(org, "crm", CRM_YEARLY),
        suite.record_plan(org, "desk", DESK_MONTHLY),
        succeeded(suite.change_admins(org, "u-bob", "desk", "u-alice", []), 200),
        succeeded(suite.start_trial(org), 201),
    ]
    suite.advance_days(25)
    answers.append(succeeded(suite.extend_trial(org), 200))
    answers.append(succeeded(suite.cancel_trial(org), 200))
    answers.append(succeeded(suite.upgrade(org, "buy"), 201))

    versions = [answer["version"] for answer in answers]
    positions = [answer["position"] for answer in answers]
    assert versions == sorted(set(versions))
    assert positions == sorted(set(positions))
    stream = suite.all_events(org)
    assert (stream[-1]["version"], stream[-1]["position"]) == (versions[-1], positions[-1])


def test_the_stream_is_oldest_first_with_position_version_type_time_and_data(
    suite: Suite,
) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    succeeded(suite.start_trial(org), 201)

    page = suite.events(org)

    assert set(page) == {"events", "next"}
    assert page["next"] is None
    events = page["events"]
    assert [event["type"] for event in events] == [
        "OrganizationRegistered",
        "StandaloneSubscriptionRecorded",
        "TrialStarted",
    ]
    for event in events:
        # SPEC §10's five keys; the API adds the event's organization and its
        # tamper-evidence link, as the audit export does (docs/events.md).
        assert set(event) == {"position", "version", "type", "at", "data"} | {
            "organization_id",
            "chain",
        }
        assert event["organization_id"] == org
    assert [event["version"] for event in events] == [1, 2, 3]
    positions = [event["position"] for event in events]
    assert positions == sorted(positions)
    assert events[2]["at"] == "2026-11-26T09:00:00+00:00"
    assert events[2]["data"]["by"] == "u-alice"
    recorded = events[1]["data"]
    assert recorded["service"] == "crm"
    assert recorded["amount_paid"] == 120_000
    assert recorded["period_start"] == "2026-03-06"
    assert recorded["period_end"] == "2027-03-06"


def test_the_stream_pages_with_after_and_limit_and_next(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY, desk={**DESK_MONTHLY, "super_admin": "u-alice"})
    succeeded(suite.start_trial(org), 201)
    succeeded(suite.cancel_trial(org), 200)
    everything = suite.events(org)["events"]

    first = suite.events(org, limit=2)
    second = suite.events(org, after=first["next"], limit=2)
    rest = suite.events(org, after=second["next"], limit=100)

    assert first["events"] == everything[:2]
    assert first["next"] == everything[1]["position"]
    assert second["events"] == everything[2:4]
    assert rest["events"] == everything[4:]
    assert rest["next"] is None


def test_a_client_reads_its_own_write_with_min_position(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    started = succeeded(suite.start_trial(org), 201)
    view = suite.access(org, min_position=started["position"])

    assert view["position"] >= started["position"]
    assert view["version"] == started["version"]
    assert view["bundle"]["state"] == "trial"


def test_the_view_names_the_version_and_position_it_reflects(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)
    started = succeeded(suite.start_trial(org), 201)

    view = suite.access(org)

    assert view["version"] == started["version"]
    assert view["position"] == started["position"]


def test_users_and_operators_read_the_same_stream(suite: Suite) -> None:
    org = suite.organization_with(crm=CRM_YEARLY)

    by_operator = succeeded(
        suite.client.get(f"/v1/organizations/{org}/events", headers=suite.operator()), 200
    )

    assert by_operator == suite.events(org)
