"""Rebuild every projection from the log into fresh tables; compare; optionally swap.

``suitesub audit rebuild`` calls :func:`rebuild_views`:

1. create a fresh set of view tables (``rebuild_<random>_*``) beside the live ones;
2. bring the live views up to the log's end (as any follower would: safe
   beside running followers), then read them consistently (rows and their
   position ``P``);
3. apply the log from the beginning up to ``P`` into the fresh tables;
4. report every difference between live and rebuilt rows, field by field;
5. with ``apply``: bring the rebuilt rows up to the log's end and, holding
   the live views' write lock, replace the live rows and position with them
   in one transaction (readers see the old or the new views, never a mix;
   the position never moves back, so running followers stay correct);
6. drop the fresh tables.

The live views keep serving and following the log throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from application.projections.projection import Progress, ViewFollower
from application.projections.read_model import construct_views
from application.projections.rows import DirectoryEntry, OrganizationRow
from application.projections.views import MemoryOrganizationViews, ViewSnapshot
from domain.facts import facts_to_dict

if TYPE_CHECKING:
    from application.bootstrap import Services

#: Events per transaction while filling the fresh tables: four times fewer
#: commits than a follower's batches (each one waits for the disk), while a
#: batch still holds SQLite's write lock for well under a tenth of a second.
REBUILD_BATCH_SIZE = 2000


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
    #: The live views' position when they were read (the comparison point).
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
    services: Services, apply: bool = False, progress: Progress | None = None
) -> RebuildReport:
    """Rebuild the access view and the directory from the log; see the module doc.

    ``progress(position, target)`` is called after each applied batch.
    """
    app = services.app
    live = services.read_model.views
    fresh = construct_views(app, prefix=f"rebuild_{uuid4().hex[:12]}")
    try:
        fresh_follower = ViewFollower(app, fresh, batch_size=REBUILD_BATCH_SIZE)
        ViewFollower(app, live).catch_up(progress=progress)
        live_snapshot = live.snapshot()
        fresh_follower.catch_up(until=live_snapshot.position, progress=progress)
        rebuilt_snapshot = fresh.snapshot()
        report = RebuildReport(
            live_position=live_snapshot.position,
            rebuilt_position=rebuilt_snapshot.position,
            latest_position=0,
            organizations=len(rebuilt_snapshot.access),
            differences=compare_snapshots(live_snapshot, rebuilt_snapshot),
        )
        if apply:
            fresh_follower.catch_up(progress=progress)

            def up_to_date(live_position: int) -> ViewSnapshot:
                # Runs under the live views' write lock: build in memory only
                # (on SQLite a second write transaction would wait for this one).
                memory = MemoryOrganizationViews()
                memory.replace(lambda _position: fresh.snapshot())
                ViewFollower(app, memory, batch_size=REBUILD_BATCH_SIZE).catch_up()
                return memory.snapshot()

            installed = live.replace(up_to_date)
            report.applied = True
            report.applied_position = installed.position
        report.latest_position = fresh_follower.latest_position()
        return report
    finally:
        fresh.drop()


def compare_snapshots(live: ViewSnapshot, rebuilt: ViewSnapshot) -> list[ViewDifference]:
    """Every field on which the two sets of views disagree, ordered by organization."""
    differences: list[ViewDifference] = []
    for organization_id in sorted(set(live.access) | set(rebuilt.access)):
        differences += _compare_access(
            organization_id, live.access.get(organization_id), rebuilt.access.get(organization_id)
        )
    for organization_id in sorted(set(live.directory) | set(rebuilt.directory)):
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
