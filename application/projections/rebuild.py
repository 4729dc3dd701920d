"""Rebuild every projection from the log into fresh tables; compare; optionally swap.

``suitesub audit rebuild`` calls :func:`rebuild_views`:

1. create a fresh set of view tables (``rebuild_<random>_*``) beside the live ones;
2. bring the live views up to the log's end (as any follower would: safe
   beside running followers), at position ``P``;
3. apply the log from the beginning up to ``P`` into the fresh tables;
4. compare live and rebuilt rows page by page in organization-id order
   (keyset pages, each one short read: bounded memory, and no transaction
   left idle while rows are decoded, which PostgreSQL would end), each pair
   of pages at one position — if the live views moved on, the fresh ones
   are brought to the same position first — and report every difference,
   field by field;
5. with ``apply``: bring the rebuilt rows up to the log's end and, holding
   the live views' write lock, replace the live rows with them (copied by
   the database, not through Python) and apply the events recorded since,
   in one transaction (readers see the old or the new views, never a mix;
   the position never moves back, so running followers stay correct);
6. drop the fresh tables.

The live views keep serving and following the log throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application

from application.projections.follower import Follower, Progress
from application.projections.rows import DirectoryEntry, OrganizationRow
from application.projections.views import (
    OrganizationViews,
    OrganizationViewsProjection,
    ViewPage,
)
from application.view_faults import ViewFaults
from domain.facts import facts_to_dict

#: Events per transaction while filling the fresh tables: four times fewer
#: commits than a follower's batches (each one waits for the disk), while a
#: batch still holds SQLite's write lock for well under a tenth of a second.
REBUILD_BATCH_SIZE = 2000

#: Organizations per page when comparing live and rebuilt views: a page of
#: each is one short read (memory stays bounded, no transaction idles).
COMPARE_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class ViewDifference:
    """One field on which a live row and its rebuilt row disagree.

    ``field`` is a dotted path: ``access`` / ``directory`` (the whole row is
    missing on one side), ``access.version``, ``access.facts.bundle_state``,
    ``directory.trial_ends_at``, ...
    """

    organization_id: str
    field: str
    live: Any
    rebuilt: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "field": self.field,
            "live": self.live,
            "rebuilt": self.rebuilt,
        }


@dataclass
class RebuildReport:
    #: The live views' position when they were read (the comparison point;
    #: with pages, that of the last page — every page was compared at a
    #: position both views had reached).
    live_position: int
    #: The rebuilt views' position at the comparison (equal to ``live_position``).
    rebuilt_position: int
    #: The log's last position when the rebuild finished.
    latest_position: int
    #: Organizations in the rebuilt views.
    organizations: int
    differences: list[ViewDifference] = field(default_factory=list)
    #: Whether the rebuilt views replaced the live ones.
    applied: bool = False
    #: The live views' position after the swap (``None`` without ``apply``).
    applied_position: int | None = None

    @property
    def consistent(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "live_position": self.live_position,
            "rebuilt_position": self.rebuilt_position,
            "latest_position": self.latest_position,
            "organizations": self.organizations,
            "consistent": self.consistent,
            "differences": [d.to_dict() for d in self.differences],
            "applied": self.applied,
            "applied_position": self.applied_position,
        }


def rebuild_views(
    app: Application[Any],
    live: OrganizationViews,
    apply: bool = False,
    progress: Progress | None = None,
    faults: ViewFaults | None = None,
) -> RebuildReport:
    """Rebuild the access view and the directory from the log; see the module doc.

    ``progress(position, target)`` is called after each applied batch;
    ``faults`` records the events the followers pass over (application/view_faults.py).
    """
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
        report = RebuildReport(
            live_position=target, rebuilt_position=target, latest_position=0, organizations=0
        )
        for live_page, rebuilt_page in compared_pages(
            live_follower, fresh_follower, progress=progress
        ):
            report.live_position = live_page.position
            report.rebuilt_position = rebuilt_page.position
            report.organizations += len(rebuilt_page.access)
            report.differences += compare_pages(live_page, rebuilt_page)
        if apply:
            fresh_follower.catch_up(progress=progress)
            # One transaction under the live views' write lock: the database
            # copies the rebuilt rows in, then the few events recorded since
            # are folded in on top, so the position never moves back.
            with live.replacing(fresh) as changes:
                for batch in live_follower.batches(changes.reached):
                    changes.fold(batch)
            report.applied = True
            report.applied_position = changes.reached
        report.latest_position = fresh_follower.latest_position()
        return report
    finally:
        fresh.drop()


def compared_pages(
    live: Follower[OrganizationViews],
    rebuilt: Follower[OrganizationViews],
    *,
    progress: Progress | None = None,
) -> Iterator[tuple[ViewPage, ViewPage]]:
    """Pages of the live and the rebuilt views, in id order, each pair at one position.

    Each page is its own short read, so memory stays bounded however many
    organizations there are. The live views may move on between pages
    (followers keep running): the rebuilt ones are then brought to the same
    position before that page is compared. Each pair covers the same ids.
    """
    after: str | None = None
    while True:
        live_page = live.view.page(after, COMPARE_PAGE_SIZE)
        rebuilt_page = rebuilt.view.page(after, COMPARE_PAGE_SIZE)
        while rebuilt_page.position != live_page.position:
            if rebuilt_page.position < live_page.position:
                rebuilt.catch_up(until=live_page.position, progress=progress)
                rebuilt_page = rebuilt.view.page(after, COMPARE_PAGE_SIZE)
            else:  # only if something else moved the rebuilt views: catch the live ones up
                live.catch_up(until=rebuilt_page.position)
                live_page = live.view.page(after, COMPARE_PAGE_SIZE)
        ends = [page.last for page in (live_page, rebuilt_page) if page.last is not None]
        last = min(ends) if ends else None
        yield live_page.up_to(last), rebuilt_page.up_to(last)
        if last is None:
            return
        after = last


def compare_pages(live: ViewPage, rebuilt: ViewPage) -> list[ViewDifference]:
    """Every field on which two pages over the same ids disagree, ordered by organization."""
    differences: list[ViewDifference] = []
    ids = set(live.access) | set(rebuilt.access) | set(live.directory) | set(rebuilt.directory)
    for organization_id in sorted(ids):
        differences += _compare_access(
            organization_id, live.access.get(organization_id), rebuilt.access.get(organization_id)
        )
        differences += _compare_fields(
            organization_id,
            "directory",
            _directory_fields(live.directory.get(organization_id)),
            _directory_fields(rebuilt.directory.get(organization_id)),
        )
    return differences


def _compare_access(
    organization_id: str, live: OrganizationRow | None, rebuilt: OrganizationRow | None
) -> list[ViewDifference]:
    return _compare_fields(organization_id, "access", _access_fields(live), _access_fields(rebuilt))


def _access_fields(row: OrganizationRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    facts = {f"facts.{key}": value for key, value in facts_to_dict(row.facts).items()}
    return {"version": row.version, "position": row.position, **facts}


def _directory_fields(entry: DirectoryEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "name": entry.name,
        "recorded_state": entry.recorded_state,
        "trial_ends_at": _plain(entry.trial_ends_at),
        "version": entry.version,
        "position": entry.position,
    }


def _compare_fields(
    organization_id: str,
    view: str,
    live: dict[str, Any] | None,
    rebuilt: dict[str, Any] | None,
) -> list[ViewDifference]:
    if live is None or rebuilt is None:
        if live is None and rebuilt is None:
            return []
        return [
            ViewDifference(
                organization_id,
                view,
                None if live is None else "present",
                None if rebuilt is None else "present",
            )
        ]
    return [
        ViewDifference(organization_id, f"{view}.{key}", live.get(key), rebuilt.get(key))
        for key in sorted(set(live) | set(rebuilt))
        if live.get(key) != rebuilt.get(key)
    ]


def _plain(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
