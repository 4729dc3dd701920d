"""Business times are recorded in UTC (SPEC §7) whatever zone a clock speaks,
and calendar days are UTC days."""

from __future__ import annotations

from datetime import date, timedelta, timezone

import pytest

from domain import events as ev
from domain.access_view import access_view
from domain.errors import InvalidRequest
from domain.organization import Organization
from tests.domain.builders import CATALOG, ORG_ID, T0, Plan, days, organization_with, yearly_request

JST = timezone(timedelta(hours=9), "JST")
ALICE = "u-alice"


def last_event(org: Organization) -> object:
    return org.collect_events()[-1]


def test_a_trial_started_with_a_local_time_ends_at_a_utc_time() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE))
    org.start_trial(by=ALICE, at=T0.astimezone(JST), catalog=CATALOG)
    started = last_event(org)
    assert isinstance(started, ev.TrialStarted)
    assert started.ends_at == "2026-12-26T09:00:00+00:00"


def test_an_extension_granted_at_a_local_time_ends_at_a_utc_time() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE))
    org.start_trial(by=ALICE, at=T0, catalog=CATALOG)
    org.extend_trial(by=ALICE, at=(T0 + days(31)).astimezone(JST), catalog=CATALOG)
    extended = last_event(org)
    assert isinstance(extended, ev.TrialExtended)
    assert extended.new_end == "2027-01-11T09:00:00+00:00"


def test_a_quote_at_a_local_time_has_a_utc_contract() -> None:
    org = organization_with(Plan("crm", super_admin=ALICE))
    quote = org.quote(yearly_request(), at=T0.astimezone(JST), catalog=CATALOG)
    assert quote.to_dict()["contract_start"] == "2026-11-26T09:00:00+00:00"
    assert quote.to_dict()["contract_end"] == "2027-11-26T09:00:00+00:00"


def test_the_day_a_plan_ends_is_a_utc_day() -> None:
    # 2027-03-06 01:00 in Tokyo is still 2027-03-05 in UTC: the crm plan is running.
    org = organization_with(Plan("crm", super_admin=ALICE, end=date(2027, 3, 6)))
    tokyo_morning = (T0 + days(99) + timedelta(hours=7)).astimezone(JST)
    assert tokyo_morning.date() == date(2027, 3, 6)
    quote = org.quote(yearly_request(), at=tokyo_morning, catalog=CATALOG)
    assert [(c.service, c.remaining_days) for c in quote.credits] == [("crm", 1)]
    view = access_view(org.facts, CATALOG, tokyo_morning)
    assert view.services[0].edition == "paid"


@pytest.mark.parametrize("country", ["J1", "1P", "jp", "JPN", "J"])
def test_a_country_must_be_two_upper_case_letters(country: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        Organization.register(
            organization_id=ORG_ID, name="Acme", country=country, owner_user_id="u", at=T0
        )
    assert "country" in refused.value.details["fields"]
