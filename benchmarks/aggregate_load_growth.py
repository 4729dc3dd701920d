"""aggregate_load_growth: how load time grows with an organization's history.

The time to load an organization with 1 000 events divided by the time to
load one with 10. Snapshots (every 20 events, the application's
``snapshotting_intervals``) keep this flat. A stream of 1 000 events ends
exactly on a snapshot, which flatters it, so a second figure loads the worst
stream in that snapshot window: 1 019 events, i.e. the snapshot at 1 000 plus
19 events to replay.
"""

from __future__ import annotations

from uuid import UUID

from application.catalog_loader import default_catalog
from application.service import SuiteSubscriptions
from application.settings import database_settings
from benchmarks.harness import BenchmarkResult, Profile, timed
from benchmarks.organizations import T0, save_all, with_history
from benchmarks.stores import store
from domain.clock import ManualClock
from domain.organization import Organization

NAME = "aggregate_load_growth"
TARGET = "<= 2.0"
#: The worst stream of a snapshot window (issue 10; was <= 2.0 like the other).
WORST_TARGET = "<= 1.5"
SMALL, LARGE = 10, 1000
#: The longest replay after the snapshot taken at LARGE events.
WORST = LARGE + SuiteSubscriptions.snapshotting_intervals[Organization] - 1


def run(profile: Profile, store_kind: str = "sqlite") -> list[BenchmarkResult]:
    catalog = default_catalog()
    with store(store_kind, NAME) as url:
        env = dict(database_settings(url).persistence_env)
        app = SuiteSubscriptions(env, clock=ManualClock(T0), catalog=catalog)
        try:
            small, large, worst = (
                _saved(app, with_history(catalog, events)) for events in (SMALL, LARGE, WORST)
            )
            best = {small: float("inf"), large: float("inf"), worst: float("inf")}
            for _round in range(max(3, profile.rounds)):
                for organization_id, fastest in best.items():
                    seconds = (
                        timed(
                            lambda: _load(app, organization_id, profile.load_repeats)  # noqa: B023
                        )
                        / profile.load_repeats
                    )
                    best[organization_id] = min(fastest, seconds)
        finally:
            app.close()
    suffix = "" if store_kind == "sqlite" else f"_{store_kind}"
    small_us = best[small] * 1e6
    return [
        _result(NAME + suffix, best[large] * 1e6, small_us, LARGE, store_kind, profile, TARGET),
        _result(
            f"{NAME}_worst{suffix}",
            best[worst] * 1e6,
            small_us,
            WORST,
            store_kind,
            profile,
            WORST_TARGET,
        ),
    ]


def _result(
    name: str,
    value_us: float,
    small_us: float,
    events: int,
    store_kind: str,
    profile: Profile,
    target: str,
) -> BenchmarkResult:
    return BenchmarkResult(
        name=name,
        value=value_us,
        unit="µs/load",
        baseline=small_us,
        ratio=value_us / small_us,
        target=target,
        store=store_kind,
        details={"events": events, "baseline_events": SMALL, "loads": profile.load_repeats},
    )


def _saved(app: SuiteSubscriptions, organization: Organization) -> UUID:
    [organization_id] = save_all(app, [organization])
    return organization_id


def _load(app: SuiteSubscriptions, organization_id: UUID, times: int) -> None:
    for _ in range(times):
        app.get_organization(organization_id)
