"""Rebuild a view from the log into fresh tables, compare, optionally swap
(``suitesub audit rebuild``; the steps are in :func:`rebuild_view`).

The live views keep serving and following the log throughout. The organization
views and the invoices view (application/invoices/projection.py, pages by
invoice number) are rebuilt by the same steps into one report: the invoices'
differences are named ``invoices.<number>[.<field>]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application

from application.invoices.projection import InvoicesProjection, InvoicesView
from application.projections.follower import Follower, Progress
from application.projections.tracking import Page, TrackedView, ViewProjection
from application.projections.views import OrganizationViews, OrganizationViewsProjection
from application.view_faults import ViewFaults

#: Events per transaction filling the fresh tables: four times fewer commits
#: than a follower's, a batch still holding SQLite's lock well under 0.1 s.
REBUILD_BATCH_SIZE = 2000
REPORT_KEYS = (
    "live_position", "rebuilt_position", "latest_position", "organizations",
    "consistent", "differences", "applied", "applied_position", "invoices",
)  # fmt: skip
#: Rows per compared page: each page one short read, memory bounded.
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
    #: Invoices in the rebuilt invoices view (application/invoices/projection.py).
    invoices: int = 0

    def include(self, other: RebuildReport) -> None:
        """Add another projection's rebuild (the invoices view) to this report."""
        self.differences += other.differences
        self.invoices += other.invoices
        self.latest_position = max(self.latest_position, other.latest_position)

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
    invoices: InvoicesView | None = None,
) -> RebuildReport:
    """The organization views (and, given, the invoices view) rebuilt and compared."""
    report, _ = rebuild_view(app, OrganizationViewsProjection(view=live), apply, progress, faults)
    if invoices is not None:
        report.include(rebuild_invoices(app, invoices, apply, progress, faults))
    return report


def rebuild_invoices(
    app: Application[Any],
    live: InvoicesView,
    apply: bool = False,
    progress: Progress | None = None,
    faults: ViewFaults | None = None,
) -> RebuildReport:
    """The invoices view rebuilt by the same steps; ``organizations`` counts the
    organizations that have invoices."""
    report, rows = rebuild_view(app, InvoicesProjection(view=live), apply, progress, faults)
    report.invoices = rows
    return report


def rebuild_view(
    app: Application[Any],
    projection: ViewProjection[Any],
    apply: bool,
    progress: Progress | None,
    faults: ViewFaults | None,
) -> tuple[RebuildReport, int]:
    """1. fresh tables beside the live ones; 2. the live view to the log's end, ``P``;
    3. the log up to ``P`` into the fresh ones; 4. compare page by page
    (:func:`compared_pages`); 5. with ``apply``: the fresh rows to the log's end,
    then, under the live view's lock, copied over the live ones with the events
    since folded in, in one transaction (readers see old or new, never a mix; the
    position never moves back); 6. drop the fresh tables. ``progress(position,
    target)`` is called after each batch; ``faults`` records events passed over.
    The report, and how many rows the rebuilt view holds."""
    live: TrackedView[Any] = projection.view
    fresh = live.beside(f"rebuild_{uuid4().hex[:12]}")
    try:
        live_follower = Follower(app, type(projection)(view=live), faults=faults)
        fresh_follower = Follower(
            app, type(projection)(view=fresh), batch_size=REBUILD_BATCH_SIZE, faults=faults
        )
        target = live_follower.catch_up(progress=progress)
        fresh_follower.catch_up(until=target, progress=progress)
        report, organizations, rows = RebuildReport(target, target, 0, 0), set(), 0
        for live_page, rebuilt_page in compared_pages(live_follower, fresh_follower, progress):
            report.live_position = live_page.position
            report.rebuilt_position = rebuilt_page.position
            rebuilt = rebuilt_page.compared()
            organizations |= {organization for organization, _ in rebuilt.values()}
            rows += len({key for key, _ in rebuilt})
            report.differences += compare_pages(live_page, rebuilt_page)
        report.organizations = len(organizations)
        if apply:
            fresh_follower.catch_up(progress=progress)
            with live.replacing(fresh) as changes:
                for batch in live_follower.batches(changes.reached):
                    changes.fold(batch)
            report.applied, report.applied_position = True, changes.reached
        report.latest_position = fresh_follower.latest_position()
        return report, rows
    finally:
        fresh.drop()


def compared_pages(
    live: Follower[Any],
    rebuilt: Follower[Any],
    progress: Progress | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Pages of both views over the same keys, in key order, each pair at one position:
    if the live view moved on between pages (followers keep running), the rebuilt
    one is brought to the same position before the page is compared."""
    after: str | None = None
    while True:
        live_page = live.view.page(after, COMPARE_PAGE_SIZE)
        rebuilt_page = rebuilt.view.page(after, COMPARE_PAGE_SIZE)
        while rebuilt_page.position != live_page.position:
            if rebuilt_page.position < live_page.position:
                rebuilt.catch_up(until=live_page.position, progress=progress)
                rebuilt_page = rebuilt.view.page(after, COMPARE_PAGE_SIZE)
            else:  # only if something else moved the rebuilt view
                live.catch_up(until=rebuilt_page.position)
                live_page = live.view.page(after, COMPARE_PAGE_SIZE)
        ends = [page.last for page in (live_page, rebuilt_page) if page.last is not None]
        last = min(ends) if ends else None
        yield live_page.up_to(last), rebuilt_page.up_to(last)
        if last is None:
            return
        after = last


def compare_pages(live: Page, rebuilt: Page) -> list[ViewDifference]:
    """Every field on which two pages over the same keys disagree, by key and view."""
    differences: list[ViewDifference] = []
    before_rows, after_rows = live.compared(), rebuilt.compared()
    for key in sorted(set(before_rows) | set(after_rows)):
        view = key[1]
        organization, before = before_rows.get(key, ("", None))
        organization, after = after_rows.get(key, (organization, None))
        if before is None or after is None:
            present = [None if f is None else "present" for f in (before, after)]
            differences.append(ViewDifference(organization, view, *present))
            continue
        differences += [
            ViewDifference(organization, f"{view}.{name}", before.get(name), after.get(name))
            for name in sorted(set(before) | set(after))
            if before.get(name) != after.get(name)
        ]
    return differences
