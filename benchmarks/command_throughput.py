"""command_throughput: full start-trial commands per second through the application.

Subject: ``SuiteSubscriptions.start_trial`` — load the organization (two
events), run the carry-over rules, chain and record ``TrialStarted``.
Baseline: the least an eventsourcing application can do for one command on
the same store — load a two-event aggregate, trigger one event, save it.
Rounds alternate baseline and subject; the best round of each counts.
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
TARGET = ">= 0.5"


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
            subject_rates: list[float] = []
            baseline_rates: list[float] = []
            for _round in range(profile.rounds):
                counters = _counters(baseline, profile.commands)
                organizations = save_all(
                    subject, (registered_with_crm(catalog) for _ in range(profile.commands))
                )
                seconds = timed(lambda: _increment_each(baseline, counters))  # noqa: B023
                baseline_rates.append(len(counters) / seconds)
                seconds = timed(lambda: _start_each_trial(subject, organizations))  # noqa: B023
                subject_rates.append(len(organizations) / seconds)
        finally:
            subject.close()
            baseline.close()
    value, base = max(subject_rates), max(baseline_rates)
    return BenchmarkResult(
        name=NAME if store_kind == "sqlite" else f"{NAME}_{store_kind}",
        value=value,
        unit="commands/s",
        baseline=base,
        ratio=ratio(value, base),
        target=TARGET,
        store=store_kind,
        details={
            "commands_per_round": profile.commands,
            "rounds": profile.rounds,
            "subject_rounds": [round(r, 1) for r in subject_rates],
            "baseline_rounds": [round(r, 1) for r in baseline_rates],
        },
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
