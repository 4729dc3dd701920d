"""The bundle state machine of SPEC §4, read at a moment in time.

``none`` → start trial → ``trial`` → (end passes) → ``trial_expired``;
from ``trial`` or ``trial_expired``: upgrade → ``active``, cancel →
``cancelled``, extend → ``trial``. From ``none`` or ``cancelled``: upgrade →
``active``. One trial per organization in its life.

After the upgrade (SPEC §11): ``active`` → (a renewal payment fails) →
``past_due`` → (paid) → ``active``; ``active`` or ``past_due`` → ``ended``
(cancelled at period end, or the last payment attempt failed). From
``ended``: upgrade → ``active`` (no trial, no standalone credit). The
contract's states are *recorded* only: a renewal's outcome depends on a
charge, so nothing is shown before the sweep records it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.catalog import Bundle
from domain.facts import BundleState, OrganizationFacts

START_TRIAL = "start_trial"
EXTEND_TRIAL = "extend_trial"
CANCEL_TRIAL = "cancel_trial"
UPGRADE = "upgrade"
ACTIONS = (START_TRIAL, EXTEND_TRIAL, CANCEL_TRIAL, UPGRADE)

_DAY = timedelta(days=1)


#: Recorded states that the passing of the trial's end turns into another
#: before any event records it (the expiry sweep records ``TrialExpired``
#: later). The one definition of "shown by time": :func:`shown_state` reads
#: it, and :func:`recorded_as_showing` turns it into a filter for stores that
#: hold only the recorded state and the trial's end (the directory's SQL).
TURNED_BY_TRIAL_END = {BundleState.TRIAL: BundleState.TRIAL_EXPIRED}


def shown_state(recorded_state: str, trial_ends_at: datetime | None, now: datetime) -> str:
    """The state as every view must show it at ``now``, from the recorded state
    and the trial's end alone."""
    if trial_ends_at is not None and now >= trial_ends_at:
        return TURNED_BY_TRIAL_END.get(recorded_state, recorded_state)
    return recorded_state


def effective_state(facts: OrganizationFacts, now: datetime) -> str:
    """The state as every view must show it at ``now``.

    A trial whose end has passed is ``trial_expired`` at once, whether or not
    the expiry sweep has recorded ``TrialExpired`` yet.
    """
    return shown_state(
        facts.bundle_state, None if facts.trial is None else facts.trial.ends_at, now
    )


@dataclass(frozen=True, slots=True)
class RecordedAs:
    """Rows whose recorded state is ``state`` and whose trial end has passed
    (``True``), has not passed or is unknown (``False``), or either (``None``)."""

    state: str
    trial_end_passed: bool | None = None

    def matches(self, recorded_state: str, trial_ends_at: datetime | None, now: datetime) -> bool:
        if recorded_state != self.state:
            return False
        if self.trial_end_passed is None:
            return True
        passed = trial_ends_at is not None and now >= trial_ends_at
        return passed == self.trial_end_passed


def recorded_as_showing(state: str) -> tuple[RecordedAs, ...]:
    """The recorded forms that :func:`shown_state` shows as ``state`` (any one of them).

    Derived from :data:`TURNED_BY_TRIAL_END`, so a filter built from it
    agrees with :func:`shown_state` on every state and time.
    """
    own = RecordedAs(state, False if state in TURNED_BY_TRIAL_END else None)
    turned = (
        RecordedAs(recorded, True)
        for recorded, shown in TURNED_BY_TRIAL_END.items()
        if shown == state
    )
    return (own, *turned)


def recorded_as_turning() -> tuple[RecordedAs, ...]:
    """Rows whose recorded state the trial's end has turned but no event has yet
    recorded (what the expiry sweep records)."""
    return tuple(RecordedAs(recorded, True) for recorded in TURNED_BY_TRIAL_END)


def days_left(facts: OrganizationFacts, now: datetime) -> int | None:
    """Whole days left in the trial, rounded up; ``None`` outside a trial."""
    state = effective_state(facts, now)
    if facts.trial is None or state not in (BundleState.TRIAL, BundleState.TRIAL_EXPIRED):
        return None
    remaining = facts.trial.ends_at - now
    if remaining <= timedelta(0):
        return 0
    return math.ceil(remaining / _DAY)


def extension_window_opens(facts: OrganizationFacts, bundle: Bundle) -> datetime | None:
    if facts.trial is None:
        return None
    return facts.trial.ends_at - timedelta(days=bundle.extension_window_days)


def extension_refusal(facts: OrganizationFacts, bundle: Bundle, now: datetime) -> str | None:
    """Why the trial cannot be extended now (an error code), or ``None``."""
    state = effective_state(facts, now)
    if state in BundleState.CONTRACTED:
        return "bundle_already_active"
    if state not in (BundleState.TRIAL, BundleState.TRIAL_EXPIRED) or facts.trial is None:
        return "trial_not_extendable"
    if facts.trial.extensions_used >= bundle.max_extensions:
        return "trial_extension_limit_reached"
    opens = extension_window_opens(facts, bundle)
    if state == BundleState.TRIAL and opens is not None and now < opens:
        return "trial_not_extendable"
    return _checkout_refusal(facts)


def cancellation_refusal(facts: OrganizationFacts, now: datetime) -> str | None:
    state = effective_state(facts, now)
    if state in BundleState.CONTRACTED:
        return "bundle_already_active"
    if state not in (BundleState.TRIAL, BundleState.TRIAL_EXPIRED):
        return "trial_not_cancellable"
    return _checkout_refusal(facts)


def start_trial_refusal(facts: OrganizationFacts, now: datetime) -> str | None:
    state = effective_state(facts, now)
    if state in BundleState.CONTRACTED:
        return "bundle_already_active"
    # An organization that has had the paid bundle buys it again; it is not
    # offered a trial of what it already used (SPEC §11, docs/domain.md).
    if facts.trial_used or facts.contract is not None:
        return "trial_already_used"
    return _checkout_refusal(facts)


def upgrade_refusal(facts: OrganizationFacts, now: datetime) -> str | None:
    if effective_state(facts, now) in BundleState.CONTRACTED:
        return "bundle_already_active"
    return _checkout_refusal(facts)


def standalone_plan_refusal(facts: OrganizationFacts, now: datetime) -> str | None:
    """Why a standalone plan cannot be recorded now (an error code), or ``None``.

    A plan recorded while a checkout is pending would be neither in the
    accepted quote's credits nor terminated by the purchase: the money paid
    for it would be lost. What was quoted is what is bought (SPEC §11).
    """
    if effective_state(facts, now) in BundleState.CONTRACTED:
        return "bundle_already_active"
    return _checkout_refusal(facts)


def admins_change_refusal(facts: OrganizationFacts) -> str | None:
    """Why a service's admins cannot be changed now (an error code), or ``None``.

    The checkout's rights were decided on the admins it saw; changing them
    while it is pending would buy for someone the carry-over rule refused.
    """
    return _checkout_refusal(facts)


def contract_cancellation_refusal(facts: OrganizationFacts) -> str | None:
    """Why the contract cannot be cancelled now (an error code), or ``None``.

    ``active``: it is set to end at its period's end; ``past_due``: it ends at
    once. A renewal charge in flight must settle first (its outcome decides
    what a cancellation means).
    """
    contract = facts.contract
    if facts.bundle_state not in BundleState.CONTRACTED or contract is None:
        return "no_active_contract"
    if contract.pending_renewal is not None:
        return "renewal_in_progress"
    if contract.pending_change is not None:
        return "change_in_progress"
    if contract.terms.cancel_at_period_end:
        return "cancellation_already_scheduled"
    return None


def withdrawal_refusal(facts: OrganizationFacts, now: datetime) -> str | None:
    """Why a scheduled cancellation cannot be withdrawn now, or ``None``."""
    contract = facts.contract
    if facts.bundle_state not in BundleState.CONTRACTED or contract is None:
        return "no_active_contract"
    if not contract.terms.cancel_at_period_end:
        return "no_cancellation_scheduled"
    if now >= contract.terms.current_period_end:
        return "contract_period_ended"
    return None


def payment_method_refusal(facts: OrganizationFacts) -> str | None:
    """Why the card on file cannot be replaced now, or ``None``."""
    contract = facts.contract
    if facts.bundle_state not in BundleState.CONTRACTED or contract is None:
        return "no_active_contract"
    if contract.pending_renewal is not None:
        return "renewal_in_progress"
    if contract.pending_change is not None:
        return "change_in_progress"
    return None


def plan_change_refusal(facts: OrganizationFacts, now: datetime) -> str | None:
    """Why the plan cannot be changed mid-term now (an error code), or ``None``.

    Only a running, paid-up contract changes: while ``past_due`` the renewal
    must be paid first; a renewal or another change being charged must settle
    first; a period whose end has passed renews before it changes (the
    change would be priced on a period that is over).
    """
    contract = facts.contract
    if facts.bundle_state not in BundleState.CONTRACTED or contract is None:
        return "no_active_contract"
    if facts.bundle_state == BundleState.PAST_DUE:
        return "payment_past_due"
    if contract.pending_renewal is not None:
        return "renewal_in_progress"
    if contract.pending_change is not None:
        return "change_in_progress"
    if now >= contract.terms.current_period_end:
        if contract.terms.cancel_at_period_end:
            return "contract_period_ended"
        return "renewal_in_progress"
    return None


def _checkout_refusal(facts: OrganizationFacts) -> str | None:
    """While a card is being charged the bundle's state is frozen.

    A trial started, extended or cancelled between UpgradeCheckoutStarted and
    UpgradePurchased would be silently overtaken by the purchase (or, for a
    cancel, downgrade services the customer is paying for). Permanent refusals
    are reported first; this one passes once the checkout completes or fails
    (a crashed one is finished by reconcile).
    """
    if facts.pending_checkout is not None:
        return "checkout_in_progress"
    return None


def available_actions(facts: OrganizationFacts, bundle: Bundle, now: datetime) -> list[str]:
    """Exactly the actions the state machine allows at ``now``, in a fixed order.

    They depend on the organization and time only: whether the *acting user*
    may take them is the carry-over rule's question (see the eligibility query).
    """
    allowed = {
        START_TRIAL: start_trial_refusal(facts, now) is None,
        EXTEND_TRIAL: extension_refusal(facts, bundle, now) is None,
        CANCEL_TRIAL: cancellation_refusal(facts, now) is None,
        UPGRADE: upgrade_refusal(facts, now) is None,
    }
    return [action for action in ACTIONS if allowed[action]]
