"""The reference article from start to end, as one customer lives it over HTTP."""

from __future__ import annotations

from tests.acceptance.conftest import (
    CATALOG_ORDER,
    CRM_YEARLY,
    DESK_MONTHLY,
    Suite,
    bundle_url,
    refused,
    standalone_url,
    succeeded,
)


def test_a_crm_and_desk_customer_tries_extends_and_buys_the_bundle(suite: Suite) -> None:
    # The back office knows Acme pays for CRM (Alice) and Desk (Bob).
    org = suite.organization_with(crm=CRM_YEARLY, desk=DESK_MONTHLY)

    # Alice's trial would lose Desk's settings: she is told who to ask.
    assert refused(suite.start_trial(org), 403, "trial_initiator_cannot_carry_over") == {
        "missing_admin_rights": ["desk"],
        "super_admins": {"crm": "u-alice", "desk": "u-bob"},
    }
    unified = succeeded(suite.change_admins(org, "u-bob", "desk", "u-alice", ["u-bob"]), 200)
    assert succeeded(suite.eligibility(org, "u-alice"), 200)["eligible"] is True

    # The 30-day trial: CRM inside the bundle, Desk on its own URL, the rest on trial.
    started = succeeded(suite.start_trial(org), 201)
    assert started["version"] > unified["version"]
    view = suite.access(org, min_position=started["position"])
    services = {service["code"]: service for service in view["services"]}
    assert view["bundle"]["days_left"] == 30
    assert services["crm"]["url"] == bundle_url("crm", org)
    assert services["desk"]["url"] == standalone_url("desk", org)
    assert services["desk"]["note"] == "available in the bundle after upgrade"
    assert services["survey"]["edition"] == "trial"

    # Thirty days later the bundle shows the decision screen.
    assert suite.advance_days(30) == "2026-12-26T09:00:00+00:00"
    expired = suite.access(org)["bundle"]
    assert expired["state"] == "trial_expired"
    assert expired["available_actions"] == ["extend_trial", "cancel_trial", "upgrade"]
    assert suite.services(org)["survey"]["edition"] == "none"

    # Alice takes the one extension (15 days from now), then buys.
    extended = succeeded(suite.extend_trial(org), 200)
    assert extended["bundle"]["trial_ends_at"] == "2027-01-10T09:00:00+00:00"
    refused(suite.extend_trial(org), 409, "trial_extension_limit_reached")
    quote = succeeded(suite.quote(org), 200)
    assert [credit["service"] for credit in quote["credits"]] == ["crm"]  # Desk ended on 12-01
    assert quote["credits"][0]["remaining_days"] == 70
    receipt = succeeded(suite.upgrade(org, "acme-buys", expected_total=quote["total"]), 201)
    assert receipt["total"] == quote["total"]

    # Every service is now paid, in the bundle, on its bundle URL.
    final = suite.access(org, min_position=receipt["position"])
    assert final["bundle"]["state"] == "active"
    assert [service["code"] for service in final["services"]] == CATALOG_ORDER
    assert {(s["edition"], s["contract"], s["access"]) for s in final["services"]} == {
        ("paid", "bundle", "bundle")
    }
    assert suite.event_types(org) == [
        "OrganizationRegistered",
        "StandaloneSubscriptionRecorded",
        "StandaloneSubscriptionRecorded",
        "ServiceAdminsChanged",
        "TrialStarted",
        "TrialExtended",
        "UpgradeCheckoutStarted",
        "UpgradePurchased",
        "StandaloneContractTerminated",
    ]
