"""The support page of an organization's webhook deliveries (SPEC §13, §12)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from uuid import UUID

import pytest
from flask.testing import FlaskClient

from application.bootstrap import Services
from tests.console.conftest import SignIn
from tests.console.story import CRM_SUPER_ADMIN, csrf_of, unify_the_super_admin
from tests.receivers import Receiver, receiver

ENGLISH = {"Accept-Language": "en"}


def text(answer: object) -> str:
    return answer.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def receivers(services: Services) -> Iterator[tuple[Receiver, Receiver]]:
    """Two endpoints: "crm sync" answers 200, "desk sync" answers 500."""
    services.webhooks.guard.allow_private = True  # the receivers listen on 127.0.0.1
    with receiver([]) as healthy, receiver([]) as failing:
        for hooks, events, description in (
            (healthy, ["*"], "crm sync"),
            (failing, ["trial.started"], "desk sync"),
        ):
            created = services.webhooks.endpoints.create(
                url=hooks.url, events=events, description=description
            )
            hooks.secrets.append(created["secret"])
        failing.behaviour.status = 500
        yield healthy, failing


def test_the_page_shows_each_endpoints_deliveries_of_the_organization_and_retries_one(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    receivers: tuple[Receiver, Receiver],
) -> None:
    _healthy, failing = receivers
    unify_the_super_admin(services.app, organization)
    services.app.start_trial(organization, by=CRM_SUPER_ADMIN)
    other = UUID(
        services.app.register_organization(
            name="Other KK", country="JP", owner_user_id="u-other"
        ).organization_id
    )
    services.app.start_trial(other, by="u-other")
    services.webhooks.run_once()
    assert failing.received, "the failing endpoint was attempted"

    sign_in()
    browser.set_cookie("console_lang", "en", path="/console")
    organization_page = text(browser.get(f"/console/support/orgs/{organization}"))
    assert f'href="/console/support/orgs/{organization}/webhooks"' in organization_page
    page = text(browser.get(f"/console/support/orgs/{organization}/webhooks", headers=ENGLISH))
    sections = dict(re.findall(r'<h2 id="endpoint-[^"]+">([^<]+)</h2>(.*?)</section>', page, re.S))
    assert set(sections) == {"crm sync", "desk sync"}

    endpoints = {e["description"]: e["id"] for e in services.webhooks.endpoints.list()}
    for name, section in sections.items():
        expected = services.webhooks.endpoints.deliveries(
            endpoints[name], organization_id=organization
        )["deliveries"]
        assert expected, name
        assert section.count('<tr class="delivery-') == len(expected)
        for delivery in expected:
            assert delivery["event_id"] in section
            assert delivery["organization_id"] == str(organization)
        for delivery in services.webhooks.endpoints.deliveries(
            endpoints[name], organization_id=other
        )["deliveries"]:
            assert delivery["event_id"] not in page  # another organization's: not here

    crm = sections["crm sync"]
    assert "trial.started" in crm
    assert "access.changed" in crm
    assert "Delivered" in crm
    assert "HTTP 200" in crm
    desk = sections["desk sync"]
    [pending] = services.webhooks.endpoints.deliveries(
        endpoints["desk sync"], organization_id=organization
    )["deliveries"]
    assert pending["status"] == "pending"
    assert pending["attempts"] == 1
    assert "Pending" in desk
    assert "HTTP 500" in desk
    assert f"{pending['last_latency_ms']} ms" in desk
    assert pending["next_attempt_at"] is not None
    assert "2026" in desk.split("HTTP 500", 1)[1]  # the next attempt's time is shown

    only_pending = text(
        browser.get(f"/console/support/orgs/{organization}/webhooks?status=pending")
    )
    assert pending["event_id"] in only_pending
    assert "HTTP 200" not in only_pending

    retried = browser.post(
        f"/console/support/orgs/{organization}/webhooks/{endpoints['desk sync']}"
        f"/deliveries/{pending['id']}/retry",
        data={"csrf_token": csrf_of(page)},
    )
    assert retried.status_code == 302
    assert "The delivery will be attempted again now." in text(browser.get(retried.location))
    again = services.webhooks.endpoints.deliveries(
        endpoints["desk sync"], organization_id=organization
    )["deliveries"][0]
    assert again["next_attempt_at"] == services.app.clock.now().isoformat()


def test_only_operators_see_the_deliveries(
    browser: FlaskClient, sign_in: SignIn, organization: UUID
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    assert browser.get(f"/console/support/orgs/{organization}/webhooks").status_code == 403


def test_without_endpoints_the_page_says_so(
    browser: FlaskClient, sign_in: SignIn, organization: UUID
) -> None:
    sign_in()
    page = text(browser.get(f"/console/support/orgs/{organization}/webhooks", headers=ENGLISH))
    assert "No webhook endpoint is configured." in page
