"""Rebuild the views from the log into fresh tables, compare, optionally swap
(``suitesub audit rebuild``; the steps are in :func:`rebuild_views`).

The live views keep serving and following the log throughout. The invoices
view (application/invoices/projection.py) is rebuilt by the same steps
(:func:`rebuild_invoices`, pages by invoice number) into the same report: its
differences are named ``invoices.<number>[.<field>]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application

from application.invoices.projection import (
    InvoicePage,
    InvoiceRow,
    InvoicesProjection,
    InvoicesView,
)
from application.projections.follower import Follower, Progress
from application.projections.views import OrganizationViews, OrganizationViewsProjection, ViewPage
from application.view_faults import ViewFaults
from domain.facts import facts_to_dict

#: Events per transaction filling the fresh tables: four times fewer commits
#: than a follower's, a batch still holding SQLite's lock well under 0.1 s.
REBUILD_BATCH_SIZE = 2000
REPORT_KEYS = (
    "live_position", "rebuilt_position", "latest_position", "organizations",
    "consistent", "differences", "applied", "applied_position", "invoices",
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
    """The organization views (and, given, the invoices view) rebuilt and compared;
    see :func:`_rebuild_organization_views` for the steps."""
    report = _rebuild_organization_views(app, live, apply, progress, faults)
    if invoices is not None:
        report.include(rebuild_invoices(app, invoices, apply, progress, faults))
    return report


def _rebuild_organization_views(
    app: Application[Any],
    live: OrganizationViews,
    apply: bool,
    progress: Progress | None,
    faults: ViewFaults | None,
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


def rebuild_invoices(
    app: Application[Any],
    live: InvoicesView,
    apply: bool = False,
    progress: Progress | None = None,
    faults: ViewFaults | None = None,
) -> RebuildReport:
    """The invoices view rebuilt by the same steps as the organization views: fresh
    tables beside, compared page by page (by invoice number), swapped in with
    ``apply``. ``organizations`` counts the organizations that have invoices."""
    fresh = live.beside(f"rebuild_{uuid4().hex[:12]}")
    try:
        live_follower = Follower(app, InvoicesProjection(view=live), faults=faults)
        fresh_follower = Follower(
            app, InvoicesProjection(view=fresh), batch_size=REBUILD_BATCH_SIZE, faults=faults
        )
        target = live_follower.catch_up(progress=progress)
        fresh_follower.catch_up(until=target, progress=progress)
        report = RebuildReport(target, target, 0, 0)
        organizations: set[str] = set()
        for live_page, rebuilt_page in compared_pages(live_follower, fresh_follower, progress):
            report.live_position, report.rebuilt_position = (
                live_page.position,
                rebuilt_page.position,
            )
            report.invoices += len(rebuilt_page.rows)
            organizations |= {row.organization_id for row in rebuilt_page.rows.values()}
            report.differences += compare_invoice_pages(live_page, rebuilt_page)
        report.organizations = len(organizations)
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


def compare_invoice_pages(live: InvoicePage, rebuilt: InvoicePage) -> list[ViewDifference]:
    """Every field on which two pages over the same invoice numbers disagree."""
    differences: list[ViewDifference] = []
    for number in sorted(set(live.rows) | set(rebuilt.rows)):
        live_row, rebuilt_row = live.rows.get(number), rebuilt.rows.get(number)
        shown = live_row or rebuilt_row
        assert shown is not None
        view = f"invoices.{number}"
        before, after = _invoice_fields(live_row), _invoice_fields(rebuilt_row)
        if before is None or after is None:
            present = [None if f is None else "present" for f in (before, after)]
            differences.append(ViewDifference(shown.organization_id, view, *present))
            continue
        differences += [
            ViewDifference(
                shown.organization_id, f"{view}.{name}", before.get(name), after.get(name)
            )
            for name in sorted(set(before) | set(after))
            if before.get(name) != after.get(name)
        ]
    return differences


def _invoice_fields(row: InvoiceRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "organization_id": row.organization_id,
        "issued_at": row.issued_at.astimezone(UTC).isoformat(),
        "position": row.position,
        **{f"invoice.{key}": value for key, value in row.invoice.items()},
    }


def compared_pages(
    live: Follower[Any],
    rebuilt: Follower[Any],
    progress: Progress | None = None,
) -> Iterator[tuple[Any, Any]]:
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
