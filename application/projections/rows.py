"""The rows the organization views hold, and how a run of events changes one.

A row is the organization's facts (folded with each event's pure ``fold``),
its version and the log position of its latest event. Nothing
time-dependent is stored: the state shown, ``days_left`` and the actions are
computed by the domain when a view is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from domain.bundle_state import shown_state
from domain.contract import contract_due_at
from domain.events import OrganizationEvent
from domain.facts import OrganizationFacts, facts_from_dict, facts_to_dict


@dataclass(frozen=True, slots=True)
class OrganizationRow:
    """One organization as the access view holds it."""

    organization_id: str
    facts: OrganizationFacts
    version: int
    position: int  # of the organization's latest event

    def facts_json(self) -> str:
        # orjson: a tenth of json.dumps's cost, the same document (benchmark: projection_rebuild).
        return orjson.dumps(facts_to_dict(self.facts), option=orjson.OPT_SORT_KEYS).decode()

    @property
    def trial_ends_at(self) -> datetime | None:
        return None if self.facts.trial is None else self.facts.trial.ends_at

    @property
    def contract_due_at(self) -> datetime | None:
        return contract_due_at(self.facts)


def row_from_json(
    organization_id: str, facts: str | dict[str, Any], version: int, position: int
) -> OrganizationRow:
    data = json.loads(facts) if isinstance(facts, str) else facts
    return OrganizationRow(organization_id, facts_from_dict(data), version, position)


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One line of the operators' directory: the state as recorded by events (a trial
    past its end reads ``trial`` until the sweep records it; shown by :meth:`to_dict`)."""

    organization_id: str
    name: str
    recorded_state: str
    trial_ends_at: datetime | None
    version: int
    position: int
    #: When time alone makes the contract need a decision recorded (a renewal, a
    #: retry, the end of a cancelled contract): ``domain.contract.contract_due_at``.
    contract_due_at: datetime | None = None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        ends = self.trial_ends_at
        return {
            "id": self.organization_id,
            "name": self.name,
            "state": shown_state(self.recorded_state, ends, now),
            "recorded_state": self.recorded_state,
            "trial_ends_at": None if ends is None else ends.astimezone(UTC).isoformat(),
            "version": self.version,
            "position": self.position,
        }

    def fields(self) -> dict[str, Any]:
        """The line as a rebuild compares it (times as UTC text)."""
        return {
            key: value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
            if key != "organization_id"
        }


def fold_run(
    row: OrganizationRow | None, events: Sequence[OrganizationEvent], position: int
) -> OrganizationRow:
    """The row after one organization's ``events`` (log order; ``row`` ``None`` before
    registration), the last at ``position``: one row object per run, not per event."""
    facts = None if row is None else row.facts
    for event in events:
        facts = event.fold(facts)
    assert facts is not None
    last = events[-1]
    key = str(last.originator_id) if row is None else row.organization_id
    return OrganizationRow(key, facts, last.originator_version, position)
