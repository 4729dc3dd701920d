"""Webhook delivery to real receivers on 127.0.0.1: signatures, order, retries,
isolation, replay, rotation, disabling, several dispatchers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Services, build_services
from application.clocks import SystemClock
from application.projections.read_model import ViewSettings
from application.webhooks import delivery as delivery_module
from application.webhooks.delivery import (
    RESOLVED_REUSE_SECONDS,
    RETRY_SCHEDULE,
    CheckedUrl,
    WebhookDispatcher,
    retry_delay,
)
from application.webhooks.sender import HttpSender
from application.webhooks.url_guard import UrlGuard, WebhookUrlRefused
from domain.catalog import Catalog
from domain.clock import ManualClock
from tests.application.helpers import register
from tests.receivers import receiver

SETTINGS = ViewSettings(follow_on_read=True, min_position_timeout=2.0)


@pytest.fixture
def services(
    store_url: str, clock: ManualClock, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Services]:
    monkeypatch.setenv("SUITE_WEBHOOKS_ALLOW_PRIVATE", "1")
    built = build_services(store_url, clock=clock, catalog=catalog, view_settings=SETTINGS)
    yield built
    built.close()


def endpoint(services: Services, url: str, events: list[str] | None = None) -> tuple[str, str]:
    created = services.webhooks.endpoints.create(
        url=url, events=events or ["*"], description="test receiver"
    )
    return created["id"], created["secret"]


def start_trials(services: Services, count: int) -> list[UUID]:
    orgs = []
    for n in range(count):
        org = register(services.app, name=f"Org {n}")
        services.app.start_trial(org, by="u-owner")
        orgs.append(org)
    return orgs


def feed_ids(services: Services, **filters: Any) -> list[str]:
    services.webhooks.integration.catch_up()
    events = services.webhooks.integration.page(after=0, types=(), limit=500)["events"]
    return [e["id"] for e in events if all(e.get(key) == value for key, value in filters.items())]


def deliveries(services: Services, endpoint_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = services.webhooks.endpoints.deliveries(endpoint_id, limit=200)[
        "deliveries"
    ]
    return found


def test_every_event_arrives_signed_as_standard_webhooks_verify_it(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        org = start_trials(services, 1)[0]
        services.webhooks.run_once()

        assert hooks.accepted_ids() == feed_ids(services)
        first = hooks.received[0]
        assert first.verified
        assert first.envelope is not None
        assert first.headers["webhook-id"] == first.envelope["id"]
        assert first.headers["webhook-signature"].startswith("v1,")
        assert first.headers["content-type"] == "application/json"
        assert first.envelope["organization_id"] == str(org)
        shown = deliveries(services, endpoint_id)
        assert {d["status"] for d in shown} == {"delivered"}
        assert all(d["last_response_code"] == 200 and d["attempts"] == 1 for d in shown)
        assert all(d["last_latency_ms"] is not None for d in shown)


def test_an_endpoint_hears_only_the_types_it_subscribed_to(services: Services) -> None:
    with receiver([]) as hooks:
        _endpoint_id, secret = endpoint(services, hooks.url, ["trial.started"])
        hooks.secrets.append(secret)
        start_trials(services, 2)
        services.webhooks.run_once()
        assert [e["type"] for e in hooks.envelopes()] == ["trial.started"] * 2


def test_an_organizations_later_events_wait_while_an_earlier_one_fails(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        failing, healthy = start_trials(services, 2)
        hooks.behaviour.fail_organization = str(failing)
        services.webhooks.run_once()

        # The failing organization's first event was tried once; its second waits.
        failing_ids = feed_ids(services, organization_id=str(failing))
        assert [r.envelope["id"] for r in hooks.received if r.envelope][:1] == failing_ids[:1]  # type: ignore[index]
        tried = [
            r.envelope["id"]
            for r in hooks.received
            if r.envelope["organization_id"] == str(failing)
        ]  # type: ignore[index]
        assert tried == failing_ids[:1]
        # The other organization is not held up.
        assert set(feed_ids(services, organization_id=str(healthy))) <= set(hooks.accepted_ids())

        pending = [d for d in deliveries(services, endpoint_id) if d["status"] == "pending"]
        head = next(d for d in pending if d["event_id"] == failing_ids[0])
        assert head["attempts"] == 1
        assert head["last_response_code"] == 500
        assert head["next_attempt_at"] is not None

        # Before the backoff has passed nothing is sent; after it, in order.
        clock.advance(timedelta(seconds=RETRY_SCHEDULE[0] * 0.5))
        assert services.webhooks.run_once() == 0
        hooks.behaviour.fail_organization = None
        clock.advance(timedelta(seconds=RETRY_SCHEDULE[0] * 1.2))
        services.webhooks.run_once()
        assert hooks.ids_of(failing) == [failing_ids[0], *failing_ids]


def test_retries_back_off_roughly_as_documented() -> None:
    import random

    rng = random.Random(7)
    delays = [retry_delay(n, rng) for n in range(1, 10)]
    expected = [5, 30, 120, 600, 3600, 21600, 43200, 43200, 43200]
    for delay, base in zip(delays, expected, strict=True):
        assert base * 0.9 <= delay <= base * 1.1


def test_a_redirect_is_a_failure_and_is_not_followed(services: Services) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        hooks.behaviour.status = 302
        start_trials(services, 1)
        services.webhooks.run_once()
        assert len(hooks.received) == 1  # one request: the Location was not visited
        head = deliveries(services, endpoint_id)[-1]
        assert head["status"] == "pending"
        assert head["last_response_code"] == 302
        assert "redirect" in head["last_error"]


def test_an_endpoint_failing_for_three_days_is_disabled_and_says_why(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        hooks.behaviour.status = 503
        start_trials(services, 1)
        services.webhooks.run_once()
        for _ in range(71):
            clock.advance(timedelta(hours=1))
            services.webhooks.run_once()
        assert services.webhooks.endpoints.get(endpoint_id)["disabled"] is False
        # The next attempt (at most 12 h + jitter later) is past the 3 days.
        for _ in range(14):
            clock.advance(timedelta(hours=1))
            services.webhooks.run_once()
        shown = services.webhooks.endpoints.get(endpoint_id)
        assert shown["disabled"] is True
        assert "3 days" in shown["disabled_reason"]
        assert "HTTP 503" in shown["disabled_reason"]
        # Disabled: nothing more is sent, until an operator enables it again.
        sent = len(hooks.received)
        clock.advance(timedelta(days=1))
        services.webhooks.run_once()
        assert len(hooks.received) == sent
        hooks.behaviour.status = None
        services.webhooks.endpoints.update(endpoint_id, disabled=False)
        clock.advance(timedelta(days=1))
        services.webhooks.run_once()
        assert {d["status"] for d in deliveries(services, endpoint_id)} == {"delivered"}


def test_a_replay_sends_the_same_event_ids_again(services: Services) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        start_trials(services, 2)
        services.webhooks.run_once()
        first = hooks.accepted_ids()
        answer = services.webhooks.endpoints.replay(endpoint_id, after_position=0)
        assert answer["deliveries"] == len(first)
        services.webhooks.run_once()
        assert hooks.accepted_ids() == first + first
        replays = [d for d in deliveries(services, endpoint_id) if d["replay"]]
        assert len(replays) == len(first)


def test_a_manual_retry_sends_a_delivered_event_once_more(services: Services) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        start_trials(services, 1)
        services.webhooks.run_once()
        delivery = deliveries(services, endpoint_id)[0]
        retried = services.webhooks.endpoints.retry(endpoint_id, delivery["id"])
        assert retried["status"] == "pending"
        services.webhooks.run_once()
        assert hooks.accepted_ids().count(delivery["event_id"]) == 2


def test_after_a_rotation_both_secrets_sign_for_24_hours(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as old_side, receiver([]) as new_side:
        endpoint_id, old_secret = endpoint(services, old_side.url)
        old_side.secrets.append(old_secret)
        rotated = services.webhooks.endpoints.rotate_secret(endpoint_id)
        new_side.secrets.append(rotated["secret"])
        assert rotated["previous_secret_expires_at"] == "2026-11-27T09:00:00+00:00"
        start_trials(services, 1)
        services.webhooks.run_once()
        signature = old_side.received[0].headers["webhook-signature"]
        assert len(signature.split(" ")) == 2
        assert new_side.verify(old_side.received[0].headers, old_side.received[0].body)

        clock.advance(timedelta(hours=24, seconds=1))
        services.webhooks.endpoints.update(endpoint_id, url=new_side.url)
        start_trials(services, 1)
        services.webhooks.run_once()
        assert old_side.verify(new_side.received[0].headers, new_side.received[0].body) is None
        assert new_side.received[0].verified
        assert services.webhooks.endpoints.get(endpoint_id)["previous_secret_expires_at"] is None


def test_deliveries_to_a_kept_alive_receiver_share_one_connection(services: Services) -> None:
    with receiver([], keep_alive=True) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        start_trials(services, 4)
        services.webhooks.run_once()  # one thread: one kept connection
        assert sorted(hooks.accepted_ids()) == sorted(feed_ids(services))
        assert len(hooks.received) == len(feed_ids(services)) > 1
        assert len(set(hooks.connections)) == 1
        assert {d["attempts"] for d in deliveries(services, endpoint_id)} == {1}


def test_a_lane_reuses_a_urls_check_for_a_second_at_most_and_never_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane's turn checks a URL once, not per delivery (CheckedUrl); another
    URL, a check older than RESOLVED_REUSE_SECONDS, or a refusal is checked anew."""
    answers: dict[str, list[str]] = {"a.example": ["93.184.216.34"], "b.example": ["10.0.0.7"]}
    asked: list[str] = []

    def resolver(host: str, _port: int) -> list[str]:
        asked.append(host)
        return answers[host]

    guard = UrlGuard(allow_private=False, resolver=resolver)
    checked = CheckedUrl()
    now = [100.0]
    monkeypatch.setattr(delivery_module.time, "monotonic", lambda: now[0])
    assert checked.target("https://a.example/x", guard).address == "93.184.216.34"
    assert checked.target("https://a.example/x", guard).address == "93.184.216.34"
    assert asked == ["a.example"]
    now[0] += RESOLVED_REUSE_SECONDS + 0.01
    answers["a.example"] = ["93.184.216.35"]
    assert checked.target("https://a.example/x", guard).address == "93.184.216.35"
    assert asked == ["a.example"] * 2
    for _ in range(2):
        with pytest.raises(WebhookUrlRefused):
            checked.target("https://b.example/x", guard)
    assert asked == ["a.example"] * 2 + ["b.example"] * 2
    assert checked.target("https://a.example/x", guard).address == "93.184.216.35"
    assert asked[-1] == "a.example"


def test_a_kept_connection_the_receiver_dropped_is_replaced_not_failed(
    services: Services,
) -> None:
    with receiver([], keep_alive=True) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        hooks.behaviour.drop_connections = True  # closes after each answer, unannounced
        start_trials(services, 3)
        services.webhooks.run_once()
        expected = feed_ids(services)
        # Each request after the first found its kept connection closed and went
        # once more on a new one: every envelope arrived once, at its first attempt.
        assert sorted(hooks.accepted_ids()) == sorted(expected)
        assert len(set(hooks.connections)) == len(expected)
        shown = deliveries(services, endpoint_id)
        assert {(d["status"], d["attempts"]) for d in shown} == {("delivered", 1)}


def test_a_stalled_endpoint_does_not_slow_another(services: Services) -> None:
    with receiver([]) as stalled, receiver([]) as healthy:
        _a, stalled_secret = endpoint(services, stalled.url)
        _b, healthy_secret = endpoint(services, healthy.url)
        stalled.secrets.append(stalled_secret)
        healthy.secrets.append(healthy_secret)
        stalled.behaviour.stall = True
        start_trials(services, 5)
        expected = len(feed_ids(services))
        stop = threading.Event()
        runner = threading.Thread(target=services.webhooks.run, args=(stop,))
        runner.start()
        try:
            # The stalled receiver holds its first requests; the other gets everything.
            assert stalled.stalled.acquire(timeout=10)
            assert healthy.wait_for(expected, timeout=10)
            assert sorted(healthy.accepted_ids()) == sorted(feed_ids(services))
            assert stalled.received == []  # every request to it is still held
        finally:
            stalled.behaviour.release.set()
            stop.set()
            runner.join()


def test_deliveries_queued_for_an_endpoint_disabled_meanwhile_are_not_sent(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        endpoint_id, secret = endpoint(services, hooks.url, ["trial.started"])
        hooks.secrets.append(secret)
        hooks.behaviour.stall = True
        start_trials(services, 6)
        services.webhooks.integration.catch_up()
        # One lane: the first request stalls, the other five wait in its queue.
        dispatcher = WebhookDispatcher(
            services.tables, clock, services.webhooks.guard, per_endpoint=1
        )
        stop = threading.Event()
        runner = threading.Thread(target=dispatcher.run, args=(stop,))
        runner.start()
        try:
            assert hooks.stalled.acquire(timeout=10)
            services.webhooks.endpoints.update(endpoint_id, disabled=True)
            dispatcher.wake()

            def leased() -> int:
                with services.tables.read() as cursor:
                    services.tables.execute(
                        cursor,
                        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE lease_owner = %s",
                        (dispatcher.owner,),
                    )
                    return int(cursor.fetchone()["n"])

            wait_until(lambda: leased() == 1)  # the queued five were given back unsent
            hooks.behaviour.release.set()
            wait_until(lambda: leased() == 0)
        finally:
            hooks.behaviour.release.set()
            stop.set()
            runner.join()
        assert len(hooks.received) == 1  # only the request already in flight
        shown = deliveries(services, endpoint_id)
        assert sorted(d["status"] for d in shown) == ["delivered"] + ["pending"] * 5
        assert {d["attempts"] for d in shown if d["status"] == "pending"} == {0}


def test_a_busy_endpoint_takes_turns_with_another_for_the_pools_threads(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as busy, receiver([]) as other:
        _busy, busy_secret = endpoint(services, busy.url, ["trial.started"])
        busy.secrets.append(busy_secret)
        start_trials(services, 60)
        _other, other_secret = endpoint(services, other.url, ["trial.started"])
        other.secrets.append(other_secret)
        start_trials(services, 3)
        services.webhooks.integration.catch_up()
        # Two threads, both first taken by the busy endpoint's two lanes.
        dispatcher = WebhookDispatcher(
            services.tables, clock, services.webhooks.guard, per_endpoint=2, pool_size=2
        )
        stop = threading.Event()
        runner = threading.Thread(target=dispatcher.run, args=(stop,))
        runner.start()
        try:
            assert busy.wait_for(63, timeout=30)
            assert other.wait_for(3, timeout=30)
        finally:
            stop.set()
            runner.join()
        # Each lane sends a turn's worth, then queues behind the others: the
        # other endpoint is served long before the busy one's backlog is done.
        assert other.received[0].at < busy.received[45].at


def test_two_dispatchers_never_send_one_delivery_twice(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        _endpoint_id, secret = endpoint(services, hooks.url)
        hooks.secrets.append(secret)
        start_trials(services, 20)
        services.webhooks.integration.catch_up()
        guard = services.webhooks.guard
        dispatchers = [
            WebhookDispatcher(services.tables, clock, guard, sender=HttpSender()) for _ in range(3)
        ]
        threads = [threading.Thread(target=d.deliver_due) for d in dispatchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = Counter(hooks.accepted_ids())
        assert sorted(counts) == sorted(feed_ids(services))
        assert set(counts.values()) == {1}


# -- leases given back -------------------------------------------------------------


def leased_by(services: Services, dispatcher: WebhookDispatcher) -> int:
    with services.tables.read() as cursor:
        services.tables.execute(
            cursor,
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE lease_owner = %s",
            (dispatcher.owner,),
        )
        return int(cursor.fetchone()["n"])


class Crash(BaseException):
    """What kills a dispatcher's loop mid-round (not an ``Exception`` it retries)."""


class CrashingOnFirstRecord(WebhookDispatcher):
    """A dispatcher whose loop dies the first time it records outcomes."""

    crashed = False

    def _record(self, *args: Any, **kwargs: Any) -> set[str]:
        if not self.crashed:
            self.crashed = True
            raise Crash
        return super()._record(*args, **kwargs)


class ExplodingSender(HttpSender):
    """A sender that fails in a way no attempt expects (a bug, not a network error)."""

    def post(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the sender broke")


def running(
    dispatcher: WebhookDispatcher, stop: threading.Event
) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def run() -> None:
        try:
            dispatcher.run(stop)
        except BaseException as error:  # the test looks at it
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, raised


def test_a_stopped_dispatcher_gives_its_claims_back_and_another_sends_them_at_once(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        _endpoint_id, secret = endpoint(services, hooks.url, ["trial.started"])
        hooks.secrets.append(secret)
        orgs = start_trials(services, 6)
        services.webhooks.integration.catch_up()
        # The first organization's delivery is held by the receiver while in flight.
        hooks.behaviour.stall_organization = str(orgs[0])
        first = WebhookDispatcher(services.tables, clock, services.webhooks.guard, per_endpoint=1)
        stop = threading.Event()
        thread, raised = running(first, stop)
        try:
            assert hooks.stalled.acquire(timeout=10)
            assert leased_by(services, first) == 6  # claimed ahead: five wait in its queue
            stop.set()
            first.wake()
            wait_until(lambda: leased_by(services, first) == 1)  # only the one in flight
            # Well inside the 60 s lease, another dispatcher sends the five now.
            second = WebhookDispatcher(services.tables, clock, services.webhooks.guard)
            assert second.deliver_due() == 5
            assert sorted(hooks.accepted_ids()) == sorted(
                feed_ids(services, type="trial.started")[1:]
            )
        finally:
            hooks.behaviour.release.set()
            thread.join()
        assert raised == []
        assert leased_by(services, first) == 0
        # The one in flight when it stopped was recorded: nobody sends it again.
        assert second.deliver_due() == 0
        assert Counter(hooks.accepted_ids()) == Counter(feed_ids(services, type="trial.started"))


def test_a_dispatcher_whose_loop_dies_mid_round_gives_its_claims_back_at_once(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as hooks:
        _endpoint_id, secret = endpoint(services, hooks.url, ["trial.started"])
        hooks.secrets.append(secret)
        orgs = start_trials(services, 6)
        services.webhooks.integration.catch_up()
        # The second delivery is held in flight, so the loop dies (recording the
        # first) while the lane is busy and four wait in its queue.
        hooks.behaviour.stall_organization = str(orgs[1])
        dying = CrashingOnFirstRecord(
            services.tables, clock, services.webhooks.guard, per_endpoint=1
        )
        stop = threading.Event()
        thread, raised = running(dying, stop)
        try:
            assert hooks.stalled.acquire(timeout=10)
            wait_until(lambda: dying.crashed)
        finally:
            hooks.behaviour.release.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert [type(error) for error in raised] == [Crash]  # the loop died, it did not stop
        assert leased_by(services, dying) == 0
        sent_before = len(hooks.accepted_ids())
        assert 2 <= sent_before < 6  # the one in flight finished; the queued were not sent
        # The attempts made before the crash were recorded; the rest go at once.
        other = WebhookDispatcher(services.tables, clock, services.webhooks.guard)
        assert other.deliver_due() == 6 - sent_before
        assert Counter(hooks.accepted_ids()) == Counter(feed_ids(services, type="trial.started"))


def test_a_dispatcher_failing_between_claim_and_record_gives_its_claims_back(
    services: Services, clock: ManualClock
) -> None:
    with receiver([]) as first_hooks, receiver([]) as second_hooks:
        for hooks in (first_hooks, second_hooks):
            _endpoint_id, secret = endpoint(services, hooks.url, ["trial.started"])
            hooks.secrets.append(secret)
        start_trials(services, 2)
        services.webhooks.integration.catch_up()
        broken = WebhookDispatcher(
            services.tables, clock, services.webhooks.guard, sender=ExplodingSender()
        )
        with pytest.raises(RuntimeError, match="the sender broke"):
            broken.deliver_due()  # its batch held one delivery per endpoint
        assert leased_by(services, broken) == 0
        other = WebhookDispatcher(services.tables, clock, services.webhooks.guard)
        assert other.deliver_due() == 4
        expected = sorted(feed_ids(services, type="trial.started"))
        assert sorted(first_hooks.accepted_ids()) == expected
        assert sorted(second_hooks.accepted_ids()) == expected


def test_the_expired_leases_of_a_killed_dispatcher_are_taken_over(
    services: Services, clock: ManualClock
) -> None:
    wall = ManualClock(SystemClock().now())  # signatures carry it: receivers check it
    with receiver([]) as hooks:
        _endpoint_id, secret = endpoint(services, hooks.url, ["trial.started"])
        hooks.secrets.append(secret)
        start_trials(services, 3)
        services.webhooks.integration.catch_up()
        guard = services.webhooks.guard
        killed = WebhookDispatcher(services.tables, clock, guard, wall_clock=wall)
        assert len(killed.claim(lambda _endpoint: 10)) == 3  # then it dies: no record, no give-back
        survivor = WebhookDispatcher(services.tables, clock, guard, wall_clock=wall)
        assert survivor.deliver_due() == 0  # the leases still hold
        wall.advance(timedelta(seconds=59))
        assert survivor.deliver_due() == 0
        wall.advance(timedelta(seconds=2))  # past the 60 s lease
        assert survivor.deliver_due() == 3
        assert sorted(hooks.accepted_ids()) == sorted(feed_ids(services, type="trial.started"))
        assert {d["attempts"] for d in deliveries(services, _endpoint_id)} == {1}


@pytest.mark.slow
def test_a_receiver_killed_mid_delivery_and_restarted_gets_every_event(
    services: Services, clock: ManualClock, tmp_path: Path
) -> None:
    log = tmp_path / "received.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    endpoint_id, secret = endpoint(services, url)
    orgs = start_trials(services, 3)
    held_id = feed_ids(services, organization_id=str(orgs[1]))[0]
    (tmp_path / "received.stall").write_text(held_id)

    first = start_receiver_process(port, secret, log)
    stop = threading.Event()
    runner = threading.Thread(target=services.webhooks.run, args=(stop,))
    runner.start()
    try:
        wait_until((tmp_path / "received.held").exists)
        first.kill()  # mid-delivery: the request for held_id never gets an answer
        first.wait()
        (tmp_path / "received.stall").unlink()
        second = start_receiver_process(port, secret, log)
        try:
            for _ in range(5):
                clock.advance(timedelta(minutes=15))  # past any backoff
                services.webhooks.dispatcher.wake()
                if set(received_ids(log)) >= set(feed_ids(services)):
                    break
                time.sleep(0.5)
            wait_until(lambda: set(received_ids(log)) >= set(feed_ids(services)))
        finally:
            second.kill()
            second.wait()
    finally:
        stop.set()
        runner.join()
    assert set(received_ids(log)) == set(feed_ids(services))
    assert held_id in received_ids(log)
    failed_first = next(d for d in deliveries(services, endpoint_id) if d["event_id"] == held_id)
    assert failed_first["attempts"] >= 2


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_receiver_process(port: int, secret: str, log: Path) -> subprocess.Popen[bytes]:
    ready = log.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.receivers", str(port), secret, str(log)],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    wait_until(ready.exists)
    return process


def received_ids(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line.strip().strip('"') for line in log.read_text().splitlines() if line.strip()]


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
