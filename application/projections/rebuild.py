"""Rebuild the views from the log into fresh tables, compare, optionally swap
(``suitesub audit rebuild``; the steps are in :func:`rebuild_views`).

The live views keep serving and following the log throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application

from application.projections.follower import Follower, Progress
from application.projections.views import OrganizationViews, OrganizationViewsProjection, ViewPage
from application.view_faults import ViewFaults
from domain.facts import facts_to_dict

#: Events per transaction filling the fresh tables: four times fewer commits
#: than a follower's, a batch still holding SQLite's lock well under 0.1 s.
REBUILD_BATCH_SIZE = 2000
REPORT_KEYS = (
    "live_position", "rebuilt_position", "latest_position", "organizations",
    "consistent", "differences", "applied", "applied_position",
)  # fmt: skip
#: Organizations per compared page: each page one short read, memory bounded.
COMPARE_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class ViewDifference:
    """A field on which a live and a rebuilt row disagree: ``access`` / ``directory``
    (the row is missing on one side), ``access.version``, ``access.facts.bundle_state``…"""

    organization_id: str
    field: str
    live: Any
    rebuilt: Any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RebuildReport:
    live_position: int  # where the last page was compared (both views had reached it)
    rebuilt_position: int
    latest_position: int  # the log's end when the rebuild finished
    organizations: int
    differences: list[ViewDifference] = field(default_factory=list)
    applied: bool = False  # whether the rebuilt views replaced the live ones
    applied_position: int | None = None

    @property
    def consistent(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        found = {**asdict(self), "consistent": self.consistent}
        return {key: found[key] for key in REPORT_KEYS}


def rebuild_views(
    app: Application[Any],
    live: OrganizationViews,
    apply: bool = False,
    progress: Progress | None = None,
    faults: ViewFaults | None = None,
) -> RebuildReport:
    """1. fresh tables beside the live ones; 2. the live views to the log's end, ``P``;
    3. the log up to ``P`` into the fresh ones; 4. compare page by page
    (:func:`compared_pages`); 5. with ``apply``: the fresh rows to the log's end,
    then, under the live views' lock, copied over the live ones with the events
    since folded in, in one transaction (readers see old or new, never a mix; the
    position never moves back); 6. drop the fresh tables. ``progress(position,
    target)`` is called after each batch; ``faults`` records events passed over."""
    fresh = live.beside(f"rebuild_{uuid4().hex[:12]}")
    try:
        live_follower = Follower(app, OrganizationViewsProjection(view=live), faults=faults)
        fresh_follower = Follower(
            app,
            OrganizationViewsProjection(view=fresh),
            batch_size=REBUILD_BATCH_SIZE,
            faults=faults,
        )
        target = live_follower.catch_up(progress=progress)
        fresh_follower.catch_up(until=target, progress=progress)
        report = RebuildReport(target, target, 0, 0)
        for live_page, rebuilt_page in compared_pages(live_follower, fresh_follower, progress):
            report.live_position, report.rebuilt_position = (
                live_page.position,
                rebuilt_page.position,
            )
            report.organizations += len(rebuilt_page.access)
            report.differences += compare_pages(live_page, rebuilt_page)
        if apply:
            fresh_follower.catch_up(progress=progress)
            with live.replacing(fresh) as changes:
                for batch in live_follower.batches(changes.reached):
                    changes.fold(batch)
            report.applied, report.applied_position = True, changes.reached
        report.latest_position = fresh_follower.latest_position()
        return report
    finally:
        fresh.drop()


def compared_pages(
    live: Follower[OrganizationViews],
    rebuilt: Follower[OrganizationViews],
    progress: Progress | None = None,
) -> Iterator[tuple[ViewPage, ViewPage]]:
    """Pages of both views over the same ids, in id order, each pair at one position:
    if the live views moved on between pages (followers keep running), the rebuilt
    ones are brought to the same position before the page is compared."""
    after: str | None = None
    while True:
        live_page = live.view.page(after, COMPARE_PAGE_SIZE)
        rebuilt_page = rebuilt.view.page(after, COMPARE_PAGE_SIZE)
        while rebuilt_page.position != live_page.position:
            if rebuilt_page.position < live_page.position:
                rebuilt.catch_up(until=live_page.position, progress=progress)
                rebuilt_page = rebuilt.view.page(after, COMPARE_PAGE_SIZE)
            else:  # only if something else moved the rebuilt views
                live.catch_up(until=rebuilt_page.position)
                live_page = live.view.page(after, COMPARE_PAGE_SIZE)
        ends = [page.last for page in (live_page, rebuilt_page) if page.last is not None]
        last = min(ends) if ends else None
        yield live_page.up_to(last), rebuilt_page.up_to(last)
        if last is None:
            return
        after = last


def compare_pages(live: ViewPage, rebuilt: ViewPage) -> list[ViewDifference]:
    """Every field on which two pages over the same ids disagree, by organization."""
    differences: list[ViewDifference] = []
    ids = set(live.access) | set(rebuilt.access) | set(live.directory) | set(rebuilt.directory)
    for key in sorted(ids):
        for view, pair in (
            ("access", (_access_fields(page.access.get(key)) for page in (live, rebuilt))),
            ("directory", (_fields(page.directory.get(key)) for page in (live, rebuilt))),
        ):
            before, after = pair
            if before is None or after is None:
                if before is not after:
                    present = [None if f is None else "present" for f in (before, after)]
                    differences.append(ViewDifference(key, view, *present))
                continue
            differences += [
                ViewDifference(key, f"{view}.{name}", before.get(name), after.get(name))
                for name in sorted(set(before) | set(after))
                if before.get(name) != after.get(name)
            ]
    return differences


def _access_fields(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    facts = {f"facts.{key}": value for key, value in facts_to_dict(row.facts).items()}
    return {"version": row.version, "position": row.position, **facts}


def _fields(entry: Any) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        key: value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
        for key, value in asdict(entry).items()
        if key != "organization_id"
    }
