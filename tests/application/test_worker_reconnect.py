"""``suitesub worker`` outlives a lost database connection (issue 9 §4).

The connection failures are injected at the follower and the sweep (the
real thing — a terminated PostgreSQL backend — is in
tests/processes/test_worker_reconnect.py); waits are on positions and
events, never on fixed sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from application import worker as worker_module
from application.bootstrap import Services, build_services
from application.worker import Backoff, Worker, WorkerSettings
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.quote import UpgradeRequest
from tests.application.helpers import CONTACT, event_types, organization_in_trial

WAIT = 15.0
FAST = WorkerSettings(
    poll_interval=0.05,
    sweep_interval=3600.0,
    reconcile_interval=3600.0,
    reconnect_first_delay=0.01,
    reconnect_max_delay=0.05,
)


@pytest.fixture
def services(store_url: str, clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services(store_url, clock=clock, catalog=catalog)
    yield built
    built.close()


def failing(times: int, then: Callable[..., Any]) -> Callable[..., Any]:
    """``then``, after raising a dropped connection ``times`` times."""
    left = [times]

    def call(*args: Any, **kwargs: Any) -> Any:
        if left[0]:
            left[0] -= 1
            msg = "consuming input failed: terminating connection due to administrator command"
            raise OperationalError(msg)
        return then(*args, **kwargs)

    return call


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        time.sleep(0.01)


class Running:
    """A worker's loop in a thread; its error, if it stopped with one."""

    def __init__(self, worker: Worker) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
        self.thread.start()

    def _run(self, worker: Worker) -> None:
        try:
            worker.run(self.stop)
        except BaseException as error:  # the test asserts on it
            self.error = error

    def finish(self) -> BaseException | None:
        self.stop.set()
        self.thread.join(timeout=WAIT)
        assert not self.thread.is_alive()
        return self.error


@pytest.fixture
def run_worker(services: Services) -> Iterator[Callable[[], Running]]:
    """Start the worker's loop; it is stopped at the end whatever the test did."""
    started: list[Running] = []

    def start() -> Running:
        started.append(
            Running(
                Worker(
                    app=services.app,
                    read_model=services.read_model,
                    webhooks=services.webhooks,
                    checkouts=services.checkouts,
                    invoices=services.invoices,
                    settings=FAST,
                )
            )
        )
        return started[-1]

    yield start
    for running in started:
        running.stop.set()
        running.thread.join(timeout=WAIT)


# -- the backoff ----------------------------------------------------------------------


def test_the_backoff_doubles_from_the_first_delay_up_to_the_maximum() -> None:
    longest = Backoff(first=0.2, maximum=2.0, draw=lambda: 1.0)
    shortest = Backoff(first=0.2, maximum=2.0, draw=lambda: 0.0)

    assert [round(longest.next_delay(), 3) for _ in range(6)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert [round(shortest.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_the_backoff_is_jittered_within_half_of_its_ceiling() -> None:
    delays = [Backoff(first=1.0, maximum=1.0).next_delay() for _ in range(50)]

    assert all(0.5 <= delay <= 1.0 for delay in delays)
    assert len(set(delays)) > 1


def test_the_backoff_stays_bounded_after_any_number_of_attempts() -> None:
    backoff = Backoff(first=0.2, maximum=30.0, attempts=5_000)

    assert backoff.next_delay() <= 30.0
    backoff.reset()
    assert backoff.next_delay() <= 0.2


# -- the worker ---------------------------------------------------------------------


def test_a_lost_connection_while_following_is_waited_out_and_following_resumes(
    services: Services,
    run_worker: Callable[[], Running],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    follower = services.read_model.follower
    monkeypatch.setattr(follower, "catch_up", failing(2, follower.catch_up))
    organization_in_trial(services.app)
    latest = follower.latest_position()
    caplog.set_level(logging.INFO, logger="application.worker")

    running = run_worker()
    until(lambda: services.read_model.views.position() >= latest)
    error = running.finish()

    assert error is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("lost the database connection" in w for w in warnings)
    assert "(attempt 1)" in warnings[0]
    assert "(attempt 2)" in warnings[1]
    assert any("reconnected after 2 attempt(s)" in r.getMessage() for r in caplog.records)


def test_a_sweep_cut_off_by_a_lost_connection_runs_again_once_reconnected(
    services: Services,
    run_worker: Callable[[], Running],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not at its next turn an hour later: the sweep is still due."""
    org = organization_in_trial(services.app)
    clock.advance(timedelta(days=31))
    monkeypatch.setattr(
        worker_module, "expire_due_trials", failing(1, worker_module.expire_due_trials)
    )

    running = run_worker()
    until(lambda: "TrialExpired" in event_types(services.app, org))

    assert running.finish() is None


def test_a_reconciliation_cut_off_by_a_lost_connection_runs_again_once_reconnected(
    services: Services,
    run_worker: Callable[[], Running],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = organization_in_trial(services.app)
    request = UpgradeRequest("yearly", 10, ())
    services.app.begin_upgrade_checkout(
        org,
        by="u-alice",
        request=request,
        billing_contact=CONTACT,
        expected_total=services.app.quote(org, request).total,
    )  # ...and the request died
    clock.advance(timedelta(minutes=11))
    checkouts = services.checkouts
    monkeypatch.setattr(checkouts, "reconcile", failing(1, checkouts.reconcile))

    running = run_worker()
    until(lambda: "UpgradeCheckoutFailed" in event_types(services.app, org))

    assert running.finish() is None


def test_a_failure_that_is_not_the_connection_still_stops_the_worker(
    services: Services, run_worker: Callable[[], Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event the views cannot apply must never be skipped by retrying around it."""

    def broken_view(*_: Any, **__: Any) -> int:
        raise ValueError("cannot apply this event")

    monkeypatch.setattr(services.read_model.follower, "catch_up", broken_view)

    running = run_worker()
    running.thread.join(timeout=WAIT)

    assert isinstance(running.finish(), ValueError)
