"""The integration-event feed and the webhook endpoints API over HTTP (SPEC §12)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from application.bootstrap import Services
from application.webhooks.url_guard import UrlGuard
from interface.app import create_app
from tests.interface.conftest import (
    CRM_YEARLY,
    SECRET,
    Caller,
    error_code,
    operator_headers,
    payload,
    user_headers,
)
from tests.receivers import receiver


@pytest.fixture(autouse=True)
def private_receivers(services: Services) -> None:
    """Receivers in these tests listen on 127.0.0.1 (SUITE_WEBHOOKS_ALLOW_PRIVATE=1)."""
    services.webhooks.guard.allow_private = True


def create(client: FlaskClient, **body: Any) -> Any:
    return client.post(
        "/v1/webhook-endpoints",
        json={"events": ["*"], "description": "crm sync", **body},
        headers=operator_headers(),
    )


def test_the_feed_lists_every_organizations_events_oldest_first(caller: Caller) -> None:
    first = caller.register("First")
    caller.subscribe(first, "crm", CRM_YEARLY)
    second = caller.register("Second")
    caller.as_user(second, "u-owner", "POST", "/trial", json={})
    answer = caller.client.get("/v1/events", headers=operator_headers())
    assert answer.status_code == 200, answer.json
    events = payload(answer)["events"]
    assert [(e["type"], e["organization_id"]) for e in events] == [
        ("access.changed", first),
        ("trial.started", second),
        ("access.changed", second),
    ]
    assert payload(answer)["next"] is None
    assert all(e["api_version"] == "2026-12-01" and e["id"].startswith("evt_") for e in events)

    started = caller.client.get(
        "/v1/events?types=trial.started,trial.cancelled&after=0&limit=10",
        headers=operator_headers(),
    )
    assert [e["type"] for e in payload(started)["events"]] == ["trial.started"]
    after = caller.client.get(
        f"/v1/events?after={events[-1]['position']}", headers=operator_headers()
    )
    assert payload(after)["events"] == []


def test_the_feed_is_for_operators_and_refuses_unknown_types(caller: Caller) -> None:
    org = caller.register()
    refused = caller.client.get("/v1/events", headers=user_headers(org, "u-owner"))
    assert refused.status_code == 403
    unknown = caller.client.get("/v1/events?types=trial.begun", headers=operator_headers())
    assert unknown.status_code == 422
    assert error_code(unknown) == "unknown_event_type"


def test_a_url_whose_host_does_not_resolve_is_refused(client: FlaskClient) -> None:
    created = create(client, url="https://hooks.invalid/suite")  # .invalid never resolves
    assert created.status_code == 422
    assert error_code(created) == "webhook_url_not_allowed"
    assert "does not resolve" in created.json["error"]["message"]


def test_endpoint_life_over_http(client: FlaskClient, services: Services) -> None:
    with receiver([]) as hooks:
        created = create(client, url=hooks.url, events=["trial.started", "access.changed"])
        assert created.status_code == 201, created.json
        endpoint = payload(created)
        assert endpoint["secret"].startswith("whsec_")
        assert endpoint["events"] == ["trial.started", "access.changed"]
        endpoint_id = endpoint["id"]

        listed = client.get("/v1/webhook-endpoints", headers=operator_headers())
        assert [e["id"] for e in payload(listed)["endpoints"]] == [endpoint_id]
        assert "secret" not in payload(listed)["endpoints"][0]
        one = client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=operator_headers())
        assert "secret" not in payload(one)

        patched = client.patch(
            f"/v1/webhook-endpoints/{endpoint_id}",
            json={"events": ["*"], "disabled": True},
            headers=operator_headers(),
        )
        assert payload(patched)["disabled"] is True
        assert payload(patched)["disabled_reason"] == "disabled by an operator"
        enabled = client.patch(
            f"/v1/webhook-endpoints/{endpoint_id}",
            json={"disabled": False},
            headers=operator_headers(),
        )
        assert payload(enabled)["disabled"] is False

        rotated = client.post(
            f"/v1/webhook-endpoints/{endpoint_id}/secret/rotation", headers=operator_headers()
        )
        assert payload(rotated)["secret"] != endpoint["secret"]
        assert payload(rotated)["previous_secret_expires_at"] == "2026-11-27T09:00:00+00:00"
        hooks.secrets.append(payload(rotated)["secret"])

        caller = Caller(client)
        org = caller.register()
        caller.as_user(org, "u-owner", "POST", "/trial", json={})
        services.webhooks.run_once()
        assert len(hooks.accepted_ids()) == 2

        shown = client.get(
            f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=operator_headers()
        )
        deliveries = payload(shown)["deliveries"]
        assert [d["status"] for d in deliveries] == ["delivered", "delivered"]
        assert deliveries[0]["last_response_code"] == 200

        retried = client.post(
            f"/v1/webhook-endpoints/{endpoint_id}/deliveries/{deliveries[0]['id']}/retry",
            headers=operator_headers(),
        )
        assert payload(retried)["status"] == "pending"
        replayed = client.post(
            f"/v1/webhook-endpoints/{endpoint_id}/replay",
            json={"after_position": 0},
            headers=operator_headers(),
        )
        assert payload(replayed)["deliveries"] == 2
        services.webhooks.run_once()
        assert len(hooks.accepted_ids()) == 5
        assert set(hooks.accepted_ids()) == {d["event_id"] for d in deliveries}

        gone = client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=operator_headers())
        assert gone.status_code == 204
        missing = client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=operator_headers())
        assert missing.status_code == 404
        assert error_code(missing) == "webhook_endpoint_not_found"


def test_deliveries_can_be_listed_for_one_organization(
    client: FlaskClient, services: Services
) -> None:
    with receiver([]) as hooks:
        endpoint = payload(create(client, url=hooks.url, events=["trial.started"]))
        hooks.secrets.append(endpoint["secret"])
        caller = Caller(client)
        first, second = caller.register("First"), caller.register("Second")
        for org in (first, second):
            caller.as_user(org, "u-owner", "POST", "/trial", json={})
        services.webhooks.run_once()
        path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
        every = payload(client.get(path, headers=operator_headers()))["deliveries"]
        assert {d["organization_id"] for d in every} == {first, second}
        only = client.get(f"{path}?organization_id={second}", headers=operator_headers())
        assert [d["organization_id"] for d in payload(only)["deliveries"]] == [second]
        refused = client.get(f"{path}?organization_id=acme", headers=operator_headers())
        assert refused.status_code == 422


def test_endpoints_refuse_bad_input_with_clear_errors(client: FlaskClient) -> None:
    unknown_type = create(client, url="http://127.0.0.1:9/x", events=["trial.begun"])
    assert unknown_type.status_code == 422
    assert error_code(unknown_type) == "validation_failed"  # the schema's enum of types
    no_events = create(client, url="http://127.0.0.1:9/x", events=[])
    assert no_events.status_code == 422
    not_a_url = create(client, url="ftp://127.0.0.1/x")
    assert error_code(not_a_url) == "webhook_url_not_allowed"
    extra = create(client, url="http://127.0.0.1:9/x", secret="mine")
    assert extra.status_code == 422
    org_user = client.post(
        "/v1/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "events": ["*"]},
        headers=user_headers("7d0c5a1e-0000-4000-8000-000000000001", "u-owner"),
    )
    assert org_user.status_code == 403


def test_on_the_embedded_default_the_api_process_delivers_by_itself(
    services: Services,
) -> None:
    # As the API keeps its views itself there, it delivers too: no worker, no run_once.
    client = create_app(
        {"SERVICES": services, "JWT_SECRET": SECRET, "WEBHOOKS_IN_PROCESS": True}
    ).test_client()
    with receiver([]) as hooks:
        endpoint = payload(create(client, url=hooks.url, events=["trial.started"]))
        hooks.secrets.append(endpoint["secret"])
        caller = Caller(client)
        org = caller.register()
        started = caller.as_user(org, "u-owner", "POST", "/trial", json={})
        assert started.status_code == 201, started.json
        assert hooks.wait_for(1, timeout=20)
        (envelope,) = hooks.envelopes()
        assert envelope["type"] == "trial.started"
        assert envelope["organization_id"] == org
        assert hooks.received[0].verified


def test_the_url_guard_refuses_inner_addresses_unless_allowed() -> None:
    addresses = {
        "public.example": ["93.184.216.34"],
        "mixed.example": ["93.184.216.34", "10.0.0.7"],
        "metadata.example": ["169.254.169.254"],
        "loopback.example": ["127.0.0.1"],
        "v6-local.example": ["fe80::1"],
        "mapped.example": ["::ffff:192.168.1.1"],
    }
    guard = UrlGuard(allow_private=False, resolver=lambda host, _port: addresses[host])
    assert guard.resolve("https://public.example/hooks").address == "93.184.216.34"
    for host in ("mixed", "metadata", "loopback", "v6-local", "mapped"):
        with pytest.raises(Exception, match="non-public address"):
            guard.resolve(f"https://{host}.example/hooks")
    with pytest.raises(Exception, match="https://"):
        guard.resolve("http://public.example/hooks")
    with pytest.raises(Exception, match="https://"):
        UrlGuard(allow_private=False).resolve("http://127.0.0.1/hooks")
    relaxed = UrlGuard(allow_private=True, resolver=lambda host, _port: addresses[host])
    assert relaxed.resolve("http://loopback.example:8080/x").port == 8080
