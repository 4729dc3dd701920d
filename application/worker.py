"""``suitesub worker``: follow the log into the views, sweep expired trials,
due reminders and due contracts (renewals, dunning, ends), reconcile abandoned
checkouts and renewals — in one loop, until stopped —
and deliver webhooks beside it (``application.webhooks``).

On PostgreSQL the loop wakes on the events table's ``NOTIFY`` (and polls
every ``poll_interval`` in case a notification is missed); on SQLite it
polls. Any number of workers may run: the views' write lock makes them apply
each event once, the sweep and reconciliation are idempotent.

A lost database connection (PostgreSQL restarted, the backend terminated,
the network cut) does not stop the worker: it waits with a bounded,
jittered exponential backoff (:class:`Backoff`), logs each attempt, and
follows again from the views' tracked position with a new ``LISTEN``
connection; a chore the loss interrupted runs again right after. Any other
failure to apply the log stops the worker with an error (the views never
skip an event; the supervisor restarts it and it resumes from the tracked
position). Any other failed chore (sweep, reconcile) is logged and retried
at its next turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventsourcing.postgres import PostgresFactory

from application.expiry import DEFAULT_SWEEP_BATCH, expire_due_trials, record_due_reminders
from application.plan_changes import PlanChanges
from application.reconnect import CONNECTION_ERRORS, Backoff, first_line
from application.renewals import DEFAULT_RENEWAL_BATCH, Renewals

if TYPE_CHECKING:
    from application.invoices.projection import InvoicesReadModel
    from application.projections.read_model import ReadModel
    from application.service import SuiteSubscriptions
    from application.upgrade import UpgradeCheckouts
    from application.webhooks.runner import Webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    poll_interval: float = 1.0
    sweep_interval: float = 60.0
    sweep_batch: int = DEFAULT_SWEEP_BATCH
    reconcile_interval: float = 300.0
    #: How often due contracts are renewed (their period's end is to the second).
    renewal_interval: float = 60.0
    renewal_batch: int = DEFAULT_RENEWAL_BATCH
    #: Notifications applied per transaction while following the log.
    batch_size: int = 500
    #: The first and the longest wait before reconnecting to the database.
    reconnect_first_delay: float = 0.2
    reconnect_max_delay: float = 30.0


class _Periodic:
    """A chore due every ``interval`` seconds (at once on the first turn)."""

    def __init__(self, name: str, interval: float, chore: Callable[[], bool]) -> None:
        self.name = name
        self.interval = interval
        self.chore = chore
        self.next_at = 0.0

    def run_if_due(self, now: float) -> None:
        if self.interval <= 0 or now < self.next_at:
            return
        try:
            more = self.chore()
        except CONNECTION_ERRORS:
            raise  # the worker reconnects; the chore stays due and runs again then
        except Exception:
            log.exception("worker: %s failed; retrying in %.0f s", self.name, self.interval)
            more = False
        # A full batch means more is due: come back at the next turn.
        self.next_at = now if more else now + self.interval


class Worker:
    """The worker's loop over the parts it uses (the CLI hands them over by name)."""

    def __init__(
        self,
        *,
        app: SuiteSubscriptions,
        read_model: ReadModel,
        webhooks: Webhooks,
        checkouts: UpgradeCheckouts,
        invoices: InvoicesReadModel | None = None,
        plan_changes: PlanChanges | None = None,
        renewals: Renewals | None = None,
        settings: WorkerSettings | None = None,
    ) -> None:
        self.app, self.read_model, self.webhooks, self.checkouts = (
            app,
            read_model,
            webhooks,
            checkouts,
        )
        #: The invoices view, followed right after the organization views.
        self.invoices = invoices
        #: Mid-term changes whose charge a crash left started; ``None``: not this worker's.
        self.plan_changes = plan_changes
        #: Renewals, dunning and the ends of contracts (SPEC §11); ``None``: not this worker's.
        self.renewals = renewals
        self.settings = settings or WorkerSettings()
        read_model.follower.batch_size = self.settings.batch_size
        if invoices is not None:
            invoices.follower.batch_size = self.settings.batch_size
        self._chores = [
            _Periodic("expiry sweep", self.settings.sweep_interval, self._sweep),
            _Periodic("renewal sweep", self.settings.renewal_interval, self._renew),
            _Periodic("checkout reconciliation", self.settings.reconcile_interval, self._reconcile),
        ]

    def run(self, stop: threading.Event) -> None:
        """Follow the log and run the chores until ``stop`` is set.

        A lost database connection is waited out (:class:`Backoff`) and
        following resumes from the views' tracked position.
        """
        # Webhooks follow the log on their own thread: a slow endpoint never
        # holds up the views.
        webhooks = threading.Thread(target=self.webhooks.run, args=(stop,), name="webhooks")
        webhooks.start()
        try:
            self._follow(stop)
        finally:
            stop.set()
            webhooks.join()

    def _follow(self, stop: threading.Event) -> None:
        backoff = Backoff(self.settings.reconnect_first_delay, self.settings.reconnect_max_delay)
        while not stop.is_set():
            try:
                log.info(
                    "worker: following the log from position %d",
                    self.read_model.views.position(),
                )
                self.read_model.follower.follow(
                    stop,
                    poll_interval=self.settings.poll_interval,
                    between_batches=lambda: self._after_catch_up(backoff),
                )
            except CONNECTION_ERRORS as error:
                delay = backoff.next_delay()
                log.warning(
                    "worker: lost the database connection (%s); reconnecting in %.1f s "
                    "(attempt %d)",
                    first_line(error),
                    delay,
                    backoff.attempts,
                )
                self._discard_broken_connections()
                stop.wait(delay)
            else:
                return

    def _after_catch_up(self, backoff: Backoff) -> None:
        # The invoices view follows the same log, right after the organization views.
        if self.invoices is not None:
            self.invoices.catch_up()
        self.run_chores()
        # Only a whole turn (the log and the chores) proves the database is
        # back: a chore that keeps failing keeps the delays growing.
        if backoff.attempts:
            log.info("worker: reconnected after %d attempt(s)", backoff.attempts)
            backoff.reset()

    def _discard_broken_connections(self) -> None:
        """Test the pooled connections now, so the next attempt does not meet a dead one."""
        factory = self.app.factory
        if isinstance(factory, PostgresFactory):
            factory.datastore.pool.check()

    def run_once(self) -> None:
        """Catch up, run every chore once, catch up with what they recorded (``--once``)."""
        self.read_model.catch_up()
        for chore in self._chores:
            chore.next_at = 0.0
            chore.run_if_due(time.monotonic())
        self.read_model.catch_up()
        if self.invoices is not None:
            self.invoices.catch_up()
        self.webhooks.run_once()

    def run_chores(self) -> None:
        now = time.monotonic()
        for chore in self._chores:
            chore.run_if_due(now)

    def _sweep(self) -> bool:
        batch = self.settings.sweep_batch
        expired = expire_due_trials(self.app, self.read_model, batch=batch)
        reminded = record_due_reminders(self.app, self.webhooks.integration, batch=batch)
        return expired.more or reminded.more

    def _renew(self) -> bool:
        if self.renewals is None:
            return False
        return self.renewals.sweep(batch=self.settings.renewal_batch).more

    def _reconcile(self) -> bool:
        report = self.checkouts.reconcile()
        if report.completed or report.failed:
            log.info("worker: reconciled checkouts %s", report.to_dict())
        if self.plan_changes is not None:
            changes = self.plan_changes.reconcile()
            if changes.completed or changes.failed:
                log.info("worker: reconciled plan changes %s", changes.to_dict())
        if self.renewals is not None:
            renewals = self.renewals.reconcile()
            if renewals.recorded:
                log.info("worker: reconciled renewals %s", renewals.to_dict())
        return False
