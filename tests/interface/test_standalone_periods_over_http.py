"""Plan periods over HTTP: a renewal PUT before the upgrade adds a period, the
quote credits each period, the stream records each service's share."""

from __future__ import annotations

from typing import Any

from tests.interface.conftest import CRM_YEARLY, Caller, payload

CRM_RENEWAL = {
    **CRM_YEARLY,
    "amount_paid": 130_000,
    "period_start": "2027-01-01",
    "period_end": "2028-01-01",
}


def test_a_renewal_put_before_the_upgrade_is_credited_beside_the_running_period(
    caller: Caller,
) -> None:
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)
    caller.subscribe(org, "crm", CRM_YEARLY)  # the same PUT again: the same period
    caller.subscribe(org, "crm", CRM_RENEWAL)

    quote = payload(caller.quote(org))
    # 2026-11-26: 36 of the running period's 365 days are left, all of the renewal's.
    assert [
        (c["service"], c["period_start"], c["remaining_days"], c["amount"])
        for c in quote["credits"]
    ] == [
        ("crm", "2026-01-01", 36, 120_000 * 36 // 365),
        ("crm", "2027-01-01", 365, 130_000),
    ]
    assert quote["credit"] + quote["unapplied_credit"] == 120_000 * 36 // 365 + 130_000

    receipt = caller.upgrade(org, "key-periods")
    assert receipt.status_code == 201, receipt.json
    events: list[dict[str, Any]] = payload(caller.as_user(org, "u-alice", "GET", "/events"))[
        "events"
    ]
    terminated = [e["data"] for e in events if e["type"] == "StandaloneContractTerminated"]
    assert [(t["service"], t["amount_credited"]) for t in terminated] == [
        ("crm", quote["credit"] + quote["unapplied_credit"])
    ]
    assert terminated[0]["credit_applied"] == receipt.json["credit"]
    assert terminated[0]["credit_to_balance"] == receipt.json["unapplied_credit"]
    assert [p["period_start"] for p in terminated[0]["periods"]] == ["2026-01-01", "2027-01-01"]
    crm = next(s for s in caller.access(org)["services"] if s["code"] == "crm")
    assert (crm["edition"], crm["contract"]) == ("paid", "bundle")
