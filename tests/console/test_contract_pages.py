"""Page 5 (SPEC §13, §11): the contract after the upgrade, and what can be done with it."""

from __future__ import annotations

from uuid import UUID

import pytest
from flask.testing import FlaskClient

from application.bootstrap import Services
from tests.console.conftest import SignIn
from tests.console.story import CRM_SUPER_ADMIN, DESK_SUPER_ADMIN, buy_the_bundle, csrf_of

ENGLISH = {"Accept-Language": "en"}


def text(answer: object) -> str:
    return answer.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def bought(services: Services, organization: UUID) -> dict[str, object]:
    return buy_the_bundle(services, organization)


def event_types(services: Services, organization: UUID) -> list[str]:
    page = services.app.organization_events(organization, after=0, limit=500)
    return [event["type"] for event in page["events"]]


def test_the_contract_page_shows_the_terms_of_the_access_views_contract_block(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    home = text(browser.get(f"/console/orgs/{organization}/"))
    assert f'href="/console/orgs/{organization}/contract"' in home
    assert "Renews on Nov 26, 2027" in home
    page = text(browser.get(f"/console/orgs/{organization}/contract"))
    contract = services.read_model.access(organization)["bundle"]["contract"]
    assert contract["current_period_end"] == "2027-11-26T09:00:00+00:00"
    assert "Renews on" in page
    assert '<dd class="renewal">Nov 26, 2027, 9:00:00' in page  # the period's end
    assert '<dd class="seats">10</dd>' in page
    assert "Storage, 10 GB × 2" in page
    assert f'<dd class="credit-balance">¥{contract["credit_balance"]:,}</dd>' in page
    assert "Visa •••• 4242" in page
    receipt = text(browser.get(f"/console/orgs/{organization}/receipts/{bought['checkout_id']}"))
    assert f'href="/console/orgs/{organization}/contract"' in receipt


def test_cancelling_at_the_period_end_and_undoing_it_records_both_events(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert "There is no refund for the running period" in page
    cancelled = browser.post(
        f"/console/orgs/{organization}/contract/cancellation", data={"csrf_token": csrf}
    )
    assert cancelled.status_code == 302
    page = text(browser.get(cancelled.location))
    assert "CRM Plus will end at the end of the current period." in page
    assert "Cancellation scheduled" in page
    assert "Ends on" in page
    contract = services.read_model.access(organization)["bundle"]["contract"]
    assert contract["cancel_at_period_end"] is True
    assert event_types(services, organization)[-1] == "BundleCancellationScheduled"

    undone = browser.post(
        f"/console/orgs/{organization}/contract/cancellation/withdrawal",
        data={"csrf_token": csrf_of(page)},
    )
    page = text(browser.get(undone.location))
    assert "The cancellation is withdrawn" in page
    assert "Renews on" in page
    assert (
        services.read_model.access(organization)["bundle"]["contract"]["cancel_at_period_end"]
        is False
    )
    assert event_types(services, organization)[-1] == "BundleCancellationWithdrawn"


def test_a_refused_cancellation_is_explained_and_changes_nothing(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.post(f"/console/orgs/{organization}/contract/cancellation", data={"csrf_token": csrf})
    version = services.app.get_organization(organization).version
    again = browser.post(
        f"/console/orgs/{organization}/contract/cancellation",
        data={"csrf_token": csrf},
        headers=ENGLISH,
    )
    assert again.status_code == 409
    assert "already set to end" in text(again)
    assert services.app.get_organization(organization).version == version


def test_before_the_upgrade_the_contract_page_sends_home(
    browser: FlaskClient, sign_in: SignIn, organization: UUID
) -> None:
    sign_in(DESK_SUPER_ADMIN, organization)
    answer = browser.get(f"/console/orgs/{organization}/contract")
    assert answer.status_code == 302
    assert answer.location == f"/console/orgs/{organization}/"
