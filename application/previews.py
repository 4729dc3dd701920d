"""What a command would do, asked before doing it — decided by the command itself.

The console's confirmation pages ("cancelling moves these services to their
free editions") must say exactly what the command will record. So the
preview runs the real command on a freshly loaded organization and reads the
events it would record, then throws the organization away: nothing is saved,
and no rule is restated beside the one in the domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.service import SuiteSubscriptions
from domain import events as ev
from domain.access_view import access_view


@dataclass(frozen=True, slots=True)
class TrialCancellationPreview:
    #: The services that would fall to their free editions, in catalog order.
    downgraded_to_free: tuple[str, ...]
    #: The access view right after the cancellation.
    access_after: dict[str, Any]


def preview_trial_cancellation(
    app: SuiteSubscriptions, organization_id: UUID, *, by: str
) -> TrialCancellationPreview:
    """What cancelling the trial now would do (its refusal, if it would be refused)."""
    organization = app.get_organization(organization_id)
    now = app.clock.now()
    organization.cancel_trial(by=by, at=now, catalog=app.catalog)
    pending = organization.collect_events()
    return TrialCancellationPreview(
        downgraded_to_free=tuple(
            e.service for e in pending if isinstance(e, ev.ServiceDowngradedToFree)
        ),
        access_after=access_view(organization.facts, app.catalog, now).to_dict(),
    )
