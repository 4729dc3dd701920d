"""The rows the organization views hold, and how one event changes them.

Both views (the access view and the operators' directory) are derived from
the same :class:`OrganizationRow`: the organization's stored facts (folded
with each event's pure ``fold``), its version and the log position of its
latest event. Nothing time-dependent is stored: "expired by the clock",
``days_left`` and ``available_actions`` are computed when a view is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.bundle_state import shown_state
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts, facts_from_dict, facts_to_dict


@dataclass(frozen=True, slots=True)
class OrganizationRow:
    """One organization as the views hold it."""

    organization_id: str
    facts: OrganizationFacts
    version: int
    #: Log position (notification id) of the organization's latest event.
    position: int

    def facts_json(self) -> str:
        return json.dumps(facts_to_dict(self.facts), sort_keys=True, separators=(",", ":"))

    @property
    def trial_ends_at(self) -> datetime | None:
        return None if self.facts.trial is None else self.facts.trial.ends_at

    def directory_entry(self) -> DirectoryEntry:
        return DirectoryEntry(
            organization_id=self.organization_id,
            name=self.facts.name,
            recorded_state=self.facts.bundle_state,
            trial_ends_at=self.trial_ends_at,
            version=self.version,
            position=self.position,
        )


def row_from_json(
    organization_id: str, facts: str | dict[str, Any], version: int, position: int
) -> OrganizationRow:
    data = json.loads(facts) if isinstance(facts, str) else facts
    return OrganizationRow(organization_id, facts_from_dict(data), version, position)


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One line of the operators' organization directory."""

    organization_id: str
    name: str
    #: The state as recorded by events (a trial past its end may still read
    #: ``trial`` until the sweep records TrialExpired; see :meth:`to_dict`).
    recorded_state: str
    trial_ends_at: datetime | None
    version: int
    position: int

    def effective_state(self, now: datetime) -> str:
        # The directory does not hold the facts: the rule on its columns.
        return shown_state(self.recorded_state, self.trial_ends_at, now)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.organization_id,
            "name": self.name,
            "state": self.effective_state(now),
            "recorded_state": self.recorded_state,
            "trial_ends_at": None
            if self.trial_ends_at is None
            else self.trial_ends_at.astimezone(UTC).isoformat(),
            "version": self.version,
            "position": self.position,
        }


def fold_run(
    row: OrganizationRow | None, events: Sequence[OrganizationEvent], position: int
) -> OrganizationRow:
    """The row after ``events``, one organization's in log order (``row`` is ``None``
    before registration); ``position`` is the log position of the last one.

    One row object per run of events, not one per event (a rebuild folds a
    whole batch's events per organization).
    """
    facts = None if row is None else row.facts
    for event in events:
        facts = event.fold(facts)
    assert facts is not None
    last = events[-1]
    return OrganizationRow(
        organization_id=str(last.originator_id) if row is None else row.organization_id,
        facts=facts,
        version=last.originator_version,
        position=position,
    )


def sortable_time(moment: datetime | None) -> str | None:
    """A fixed-width UTC text form that sorts like the times it names.

    SQLite has no time type; a fixed width (always with microseconds) makes
    text comparison in indexes and ``WHERE trial_ends_at <= ?`` correct.
    """
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
