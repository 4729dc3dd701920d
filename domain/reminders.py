"""Reminders that time alone makes due (SPEC §12): ``trial.will_end`` and
``bundle.renewal_upcoming``.

They are recorded on the stream by the sweep (so integration events derived
from the log replay exactly), once per trial end and once per renewal. A
reminder is due from ``lead`` days before the moment it announces until that
moment; a sweep that comes later than the moment itself records nothing (the
trial has ended, or the renewal has happened: other events say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.catalog import Bundle
from domain.facts import BundleState, OrganizationFacts

TRIAL_WILL_END = "trial.will_end"
RENEWAL_UPCOMING = "bundle.renewal_upcoming"


@dataclass(frozen=True, slots=True)
class Reminder:
    kind: str
    #: When the reminder becomes due.
    due_at: datetime
    #: The moment it announces (the trial's end, the renewal); not due from then on.
    announces: datetime


def pending_reminders(facts: OrganizationFacts, bundle: Bundle) -> tuple[Reminder, ...]:
    """Reminders not yet recorded for the organization's current trial or contract."""
    found: list[Reminder] = []
    trial = facts.trial
    if (
        facts.bundle_state == BundleState.TRIAL
        and trial is not None
        and facts.trial_reminded_for != trial.ends_at
    ):
        lead = timedelta(days=bundle.trial_will_end_days)
        found.append(Reminder(TRIAL_WILL_END, trial.ends_at - lead, trial.ends_at))
    contract = facts.contract
    if (
        facts.bundle_state == BundleState.ACTIVE
        and contract is not None
        and contract.billing_period == "yearly"
        and facts.renewal_reminded_for != contract.ends_at
    ):
        lead = timedelta(days=bundle.renewal_upcoming_days)
        found.append(Reminder(RENEWAL_UPCOMING, contract.ends_at - lead, contract.ends_at))
    return tuple(found)


def due_reminders(facts: OrganizationFacts, bundle: Bundle, now: datetime) -> tuple[Reminder, ...]:
    """The pending reminders that are due at ``now``."""
    return tuple(r for r in pending_reminders(facts, bundle) if r.due_at <= now < r.announces)
