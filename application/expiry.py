"""The sweeps that record what time alone decides: TrialExpired for trials whose
end has passed, and the reminders of SPEC §12 (``trial.will_end``,
``bundle.renewal_upcoming``) when they fall due.

Views show an ended trial as ``trial_expired`` at once; the sweep makes the
log say so too (the decision screen, audits and exports read the log).

- *which* trials: the directory's index on ``trial_ends_at`` (recorded state
  ``trial``, end ≤ now), after bringing the views up to the log's end;
- *bounded*: at most ``batch`` organizations per run;
- *idempotent and safe with several sweepers*: the aggregate decides again on
  its current state — a trial extended, cancelled, upgraded or already
  expired in the meantime is left alone (``expire_trial`` changes nothing),
  and two sweepers racing on one organization meet the optimistic version
  check: the loser retries on the fresh state and finds nothing to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from application.errors import ConcurrentModification

if TYPE_CHECKING:
    from application.projections.read_model import ReadModel
    from application.service import SuiteSubscriptions
    from application.webhooks.integration import IntegrationLog

log = logging.getLogger(__name__)

DEFAULT_SWEEP_BATCH = 100


@dataclass
class SweepReport:
    #: Organizations whose TrialExpired this run recorded.
    expired: list[str] = field(default_factory=list)
    #: Due in the view, but the aggregate found nothing to record (another
    #: sweeper won, or the trial was extended, cancelled or upgraded).
    unchanged: list[str] = field(default_factory=list)
    #: Kept changing under us; the next run tries again.
    failed: list[str] = field(default_factory=list)
    #: Whether the batch was full (more may be due).
    more: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "expired": self.expired,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "more": self.more,
        }


def expire_due_trials(
    app: SuiteSubscriptions, read_model: ReadModel, *, batch: int = DEFAULT_SWEEP_BATCH
) -> SweepReport:
    """One bounded sweep (the module doc): due by ``read_model``'s directory at the
    app's now, decided by ``app``."""
    if batch < 1:
        msg = "batch must be at least 1"
        raise ValueError(msg)
    read_model.catch_up()
    due = read_model.views.trials_due(now=app.clock.now(), limit=batch)
    report = SweepReport(more=len(due) == batch)
    for organization_id in due:
        try:
            result = app.expire_trial(UUID(organization_id))
        except ConcurrentModification:
            log.warning("expiry sweep: %s kept changing; left for the next run", organization_id)
            report.failed.append(organization_id)
            continue
        (report.expired if result.changed else report.unchanged).append(organization_id)
    if report.expired:
        log.info("expiry sweep: recorded TrialExpired for %d organizations", len(report.expired))
    return report


@dataclass
class ReminderReport:
    #: Organizations whose reminders (``trial.will_end``, ``bundle.renewal_upcoming``)
    #: this run recorded.
    reminded: list[str] = field(default_factory=list)
    #: Kept changing under us; the next run tries again.
    failed: list[str] = field(default_factory=list)
    more: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"reminded": self.reminded, "failed": self.failed, "more": self.more}


def record_due_reminders(
    app: SuiteSubscriptions, integration: IntegrationLog, *, batch: int = DEFAULT_SWEEP_BATCH
) -> ReminderReport:
    """Record the reminders time has made due, so they are on the stream (SPEC §12).

    *Which* organizations: the integration log's schedule (brought up to the
    log's end first); the aggregate decides again, so a reminder recorded by
    another sweeper, or a trial decided in the meantime, records nothing.
    """
    if batch < 1:
        msg = "batch must be at least 1"
        raise ValueError(msg)
    integration.catch_up()
    due = integration.reminders_due(limit=batch)
    report = ReminderReport(more=len(due) == batch)
    for organization_id in due:
        try:
            result = app.record_due_reminders(UUID(organization_id))
        except ConcurrentModification:
            log.warning("reminder sweep: %s kept changing; left for the next run", organization_id)
            report.failed.append(organization_id)
            continue
        if result.changed:
            report.reminded.append(organization_id)
    # The schedule learns what was recorded (and stops naming these as due).
    integration.catch_up()
    if report.reminded:
        log.info("reminder sweep: recorded reminders for %d organizations", len(report.reminded))
    return report
