"""command_throughput: full start-trial commands per second through the application.

Subject: ``SuiteSubscriptions.start_trial`` — load the organization (two
events), run the carry-over rules, chain and record ``TrialStarted``.
Baseline: the least an eventsourcing application can do for one command on
the same store — load a two-event aggregate, trigger one event, save it.
Short batches alternate baseline and subject; each side's total time counts.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from application.catalog_loader import default_catalog
from application.service import SuiteSubscriptions
from application.settings import database_settings
from benchmarks.harness import BenchmarkResult, Profile, ratio, timed
from benchmarks.organizations import SUPER_ADMIN, T0, registered_with_crm, save_all
from benchmarks.stores import store
from domain.clock import ManualClock

NAME = "command_throughput"
TARGET = ">= 0.75"  # issue 10 (was >= 0.5)
BATCH = 20


class Counter(Aggregate):
    """The smallest useful aggregate: one integer, one event type."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class RawApplication(Application[UUID]):
    """A bare eventsourcing application: no rules, no chain, no snapshots."""

    name = "RawBaseline"


def run(profile: Profile, store_kind: str = "sqlite") -> BenchmarkResult:
    catalog = default_catalog()
    with store(store_kind, NAME) as url:
        env: dict[str, Any] = dict(database_settings(url).persistence_env)
        subject = SuiteSubscriptions(env, clock=ManualClock(T0), catalog=catalog)
        baseline = RawApplication(env)
        try:
            # Short batches, alternated: every commit waits for the disk, and a
            # shared disk's latency drifts; both sides see the same drift. It
            # stops after ``commands`` commands or ``command_seconds`` of work.
            commands = 0
            subject_seconds = baseline_seconds = 0.0
            while commands < profile.commands and (
                subject_seconds + baseline_seconds < profile.command_seconds
            ):
                counters = _counters(baseline, BATCH)
                organizations = save_all(
                    subject, (registered_with_crm(catalog) for _ in range(BATCH))
                )
                baseline_seconds += timed(lambda: _increment_each(baseline, counters))  # noqa: B023
                subject_seconds += timed(lambda: _start_each_trial(subject, organizations))  # noqa: B023
                commands += BATCH
        finally:
            subject.close()
            baseline.close()
    value, base = commands / subject_seconds, commands / baseline_seconds
    return BenchmarkResult(
        name=NAME if store_kind == "sqlite" else f"{NAME}_{store_kind}",
        value=value,
        unit="commands/s",
        baseline=base,
        ratio=ratio(value, base),
        target=TARGET,
        store=store_kind,
        details={"commands": commands, "batch": BATCH},
    )


def _counters(app: RawApplication, count: int) -> list[UUID]:
    """Counters with two events each, like the organizations before their trial."""
    counters = []
    for _ in range(count):
        counter = Counter()
        counter.increment()
        counters.append(counter)
    app.save(*counters)
    return [counter.id for counter in counters]


def _increment_each(app: RawApplication, counters: list[UUID]) -> None:
    for counter_id in counters:
        counter: Counter = app.repository.get(counter_id)
        counter.increment()
        app.save(counter)


def _start_each_trial(app: SuiteSubscriptions, organizations: list[UUID]) -> None:
    for organization_id in organizations:
        app.start_trial(organization_id, by=SUPER_ADMIN)
