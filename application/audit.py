"""The audit tool's reading side: the log as stored, replay, and the reasons.

Everything here streams. The notification log is read a page at a time
(:func:`iterate_log`), so listing or exporting a log of millions of events
holds one page in memory, never the log.

Two ways of reading an event, on purpose:

- the **stored** form (:class:`LoggedEvent`): the bytes exactly as recorded,
  decoded by the transcoder but *not* upcast. The listing, the export and the
  tamper-evidence check use it, so what an auditor sees is what the chain
  covers, and an outside auditor can recompute every link from an export.
- the **domain** form (through the application's mapper, with upcasting):
  :func:`replay` folds these with ``event.fold(facts)`` and computes the
  access view with :func:`domain.access_view.access_view` — the very
  functions the service runs, so a replay can never disagree with what the
  API answered at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from application.errors import OrganizationNotFound
from application.event_stream import select_organization_notifications
from domain.access_view import AccessView, access_view
from domain.bundle_state import extension_window_opens
from domain.catalog import Catalog
from domain.errors import InvalidRequest
from domain.events import EVENTS_BY_NAME, OrganizationEvent, issued_invoice
from domain.facts import OrganizationFacts, facts_to_dict
from domain.tamper_evidence import event_data

#: Notifications read per query: big enough to be fast, small enough to stay flat.
PAGE_SIZE = 1000

#: Attributes the library adds to a stored event besides ``event_data``'s envelope.
LIBRARY_ENVELOPE = frozenset({"class_version"})

#: Called with the log position reached, after each page.
Progress = Callable[[int], None]


class UndecodableEvent(Exception):
    """A stored event's bytes do not decode into an event."""

    def __init__(self, position: int, organization_id: str, version: int, reason: str) -> None:
        super().__init__(f"position {position}: {reason}")
        self.position = position
        self.organization_id = organization_id
        self.version = version
        self.reason = reason


class NotYetRegistered(InvalidRequest):
    """The replay asks for a moment before the organization existed."""

    code = "not_yet_registered"


# ---------------------------------------------------------------------------
# The log as stored
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One stored event, exactly as recorded (not upcast)."""

    position: int
    organization_id: str
    version: int
    type: str
    at: datetime
    data: dict[str, Any]
    chain: str | None

    @property
    def by(self) -> str | None:
        by = self.data.get("by")
        return by if isinstance(by, str) else None

    def invoice_line(self) -> dict[str, Any] | None:
        """The invoices export schema (docs/audit.md): the invoice this event issued."""
        invoice = issued_invoice(self.data)
        if invoice is None:
            return None
        return {
            "number": invoice["number"],
            "organization_id": self.organization_id,
            "position": self.position,
            "version": self.version,
            "event_type": self.type,
            "issued_at": invoice["issued_at"],
            "invoice": invoice,
        }

    def to_dict(self) -> dict[str, Any]:
        """The export schema (docs/audit.md): stable, one JSON object per event."""
        return {
            "position": self.position,
            "organization_id": self.organization_id,
            "version": self.version,
            "type": self.type,
            "at": self.at.isoformat(),
            "by": self.by,
            "data": self.data,
            "chain": self.chain,
        }


# A log has a few dozen topics; audit verify asks once per event (benchmark audit_verify).
@lru_cache(maxsize=1024)
def event_type_of(topic: str) -> str:
    """``domain.events:TrialStarted`` → ``TrialStarted``."""
    return topic.rpartition(":")[2].rpartition(".")[2]


def decode_stored_event(app: Application[UUID], notification: Notification) -> LoggedEvent:
    """Decode the stored bytes (no upcasting); raise :class:`UndecodableEvent`."""
    organization_id = str(notification.originator_id)
    version = notification.originator_version
    try:
        state = app.mapper.transcoder.decode(notification.state)
    except Exception as error:  # any failure to decode is a finding, not a crash
        raise UndecodableEvent(
            notification.id, organization_id, version, f"state does not decode: {error}"
        ) from error
    if not isinstance(state, dict):
        raise UndecodableEvent(notification.id, organization_id, version, "state is not a map")
    at = state.get("timestamp")
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise UndecodableEvent(
            notification.id, organization_id, version, "no aware business time (timestamp)"
        )
    chain = state.get("chain")
    data = {k: v for k, v in event_data(state).items() if k not in LIBRARY_ENVELOPE}
    return LoggedEvent(
        position=notification.id,
        organization_id=organization_id,
        version=version,
        type=event_type_of(notification.topic),
        at=at.astimezone(UTC),
        data=data,
        chain=chain if isinstance(chain, str) else None,
    )


def iterate_notifications(
    app: Application[UUID],
    *,
    after: int = 0,
    topics: tuple[str, ...] = (),
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> Iterator[Notification]:
    """Every notification after ``after``, oldest first, a page at a time."""
    start = after
    while True:
        page = app.recorder.select_notifications(
            start, page_size, topics=topics, inclusive_of_start=False
        )
        if not page:
            return
        yield from page
        start = page[-1].id
        if progress is not None:
            progress(start)
        if len(page) < page_size:
            return


def iterate_organization_notifications(
    app: Application[UUID], organization_id: UUID, *, page_size: int = PAGE_SIZE
) -> Iterator[Notification]:
    """One organization's notifications, oldest first, a page at a time."""
    after = 0
    while True:
        page = select_organization_notifications(app.recorder, organization_id, after, page_size)
        if not page:
            return
        yield from page
        after = page[-1].id
        if len(page) < page_size:
            return


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which events to list. ``since`` is inclusive, ``until`` exclusive."""

    organization_id: UUID | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.event_type is not None and self.event_type not in EVENTS_BY_NAME:
            known = ", ".join(sorted(EVENTS_BY_NAME))
            msg = f"Unknown event type {self.event_type!r}; known types: {known}."
            raise InvalidRequest(msg, code="unknown_event_type")

    def admits(self, event: LoggedEvent) -> bool:
        if self.event_type is not None and event.type != self.event_type:
            return False
        if self.since is not None and event.at < self.since:
            return False
        return not (self.until is not None and event.at >= self.until)


def iterate_log(
    app: Application[UUID],
    log_filter: LogFilter | None = None,
    *,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
) -> Iterator[LoggedEvent]:
    """The stored events that pass ``log_filter``, in log order.

    Raises :class:`UndecodableEvent` on an event that does not decode
    (``verify`` reports those; listing cannot show them), and
    :class:`OrganizationNotFound` when the filter names an organization the
    log does not have (a mistyped id must not look like an empty history).
    """
    log_filter = log_filter or LogFilter()
    notifications: Iterator[Notification]
    if log_filter.organization_id is not None:
        if not _exists(app, log_filter.organization_id):
            raise OrganizationNotFound(log_filter.organization_id)
        notifications = iterate_organization_notifications(
            app, log_filter.organization_id, page_size=page_size
        )
    else:
        topics: tuple[str, ...] = ()
        if log_filter.event_type is not None:
            topics = (_topic_of(log_filter.event_type),)
        notifications = iterate_notifications(
            app, topics=topics, page_size=page_size, progress=progress
        )
    for notification in notifications:
        event = decode_stored_event(app, notification)
        if log_filter.admits(event):
            yield event


def _topic_of(event_type: str) -> str:
    cls = EVENTS_BY_NAME[event_type]
    return f"{cls.__module__}:{cls.__qualname__}"


# ---------------------------------------------------------------------------
# Replay: the organization's state and access view as they were
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewChange:
    """One thing that changed in the access view."""

    subject: str  # "bundle" or a service code
    field: str  # "state", "available_actions", … or "access" for a service's cell
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "field": self.field,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, slots=True)
class ExplainedStep:
    """Why the access view changed: an event, or time passing between events."""

    at: datetime
    cause: str  # "event" or "time"
    changes: tuple[ViewChange, ...]
    position: int | None = None
    version: int | None = None
    type: str | None = None
    by: str | None = None
    summary: str = ""
    #: The invoice the event issued (``number``, ``total``, ``currency``), if any.
    invoice: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "cause": self.cause,
            "position": self.position,
            "version": self.version,
            "type": self.type,
            "by": self.by,
            "summary": self.summary,
            "invoice": self.invoice,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class Replay:
    """An organization as it was at ``as_of`` (after event ``version``)."""

    organization_id: str
    as_of: datetime
    version: int
    position: int
    at_version_time: datetime
    facts: OrganizationFacts
    view: AccessView
    explanation: tuple[ExplainedStep, ...] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "organization_id": self.organization_id,
            "as_of": self.as_of.isoformat(),
            "version": self.version,
            "position": self.position,
            "last_event_at": self.at_version_time.isoformat(),
            "access": self.view.to_dict(),
            "facts": facts_to_dict(self.facts),
        }
        if self.explanation is not None:
            result["explanation"] = [step.to_dict() for step in self.explanation]
        return result


def replay(
    app: Application[UUID],
    organization_id: UUID,
    catalog: Catalog,
    *,
    as_of: datetime | None = None,
    version: int | None = None,
    now: datetime | None = None,
    explain: bool = False,
) -> Replay:
    """Fold the organization's events up to a business time or a version.

    ``as_of`` includes events recorded at exactly that time; ``version``
    replays up to and including that event and shows the view at its time.
    With neither, every event counts and the view is taken at ``now`` (or at
    the last event's time, if that is later).
    """
    if as_of is not None and version is not None:
        msg = "Give either an as-of time or a version, not both."
        raise InvalidRequest(msg, code="as_of_and_version")
    if version is not None and version < 1:
        msg = "Versions start at 1."
        raise InvalidRequest(msg, code="invalid_version")

    facts: OrganizationFacts | None = None
    last: LoggedEvent | None = None
    steps: list[ExplainedStep] = []
    for notification in iterate_organization_notifications(app, organization_id):
        stored = decode_stored_event(app, notification)
        if version is not None and stored.version > version:
            break
        if as_of is not None and stored.at > as_of:
            break
        event = app.mapper.to_domain_event(notification)
        assert isinstance(event, OrganizationEvent)
        if explain and facts is not None and last is not None:
            steps.extend(_time_steps(facts, catalog, last.at, stored.at))
        before = None if facts is None else access_view(facts, catalog, stored.at)
        facts = event.fold(facts)
        if explain:
            after = access_view(facts, catalog, stored.at)
            issued = issued_invoice_line(event)
            summary = summarise(stored)
            if issued is not None:
                summary += (
                    f"; invoice {issued['number']} issued, total {issued['total']} "
                    f"{issued['currency']}"
                )
            steps.append(
                ExplainedStep(
                    at=stored.at,
                    cause="event",
                    changes=tuple(diff_views(before, after)),
                    position=stored.position,
                    version=stored.version,
                    type=stored.type,
                    by=stored.by,
                    summary=summary,
                    invoice=issued,
                )
            )
        last = stored

    if facts is None or last is None:
        if as_of is not None and _exists(app, organization_id):
            msg = f"Organization {organization_id} was not registered yet at {as_of.isoformat()}."
            raise NotYetRegistered(msg, details={"as_of": as_of.isoformat()})
        raise OrganizationNotFound(organization_id)
    if version is not None and last.version < version:
        msg = f"Organization {organization_id} has no version {version} (latest {last.version})."
        raise InvalidRequest(msg, code="version_not_found", details={"latest": last.version})

    if version is not None:
        moment = last.at
    elif as_of is not None:
        moment = as_of
    else:
        # "Now": the whole stream, seen no earlier than its last decision (a
        # log written under a test clock may be ahead of this process's clock).
        moment = max(now or last.at, last.at)
    if explain and moment > last.at:
        steps.extend(_time_steps(facts, catalog, last.at, moment))
    return Replay(
        organization_id=str(organization_id),
        as_of=moment,
        version=last.version,
        position=last.position,
        at_version_time=last.at,
        facts=facts,
        view=access_view(facts, catalog, moment),
        explanation=tuple(steps) if explain else None,
    )


def issued_invoice_line(event: OrganizationEvent) -> dict[str, Any] | None:
    """What ``--explain`` says of the invoice an event issued (any charging event)."""
    invoice = event.issued_invoice
    if invoice is None:
        return None
    return {
        "number": invoice["number"],
        "issued_at": invoice["issued_at"],
        "total": invoice["total"],
        "currency": invoice["currency"],
    }


def _exists(app: Application[UUID], organization_id: UUID) -> bool:
    return bool(app.recorder.select_events(organization_id, limit=1))


def _time_steps(
    facts: OrganizationFacts, catalog: Catalog, since: datetime, until: datetime
) -> list[ExplainedStep]:
    """What changed in the view by time alone between two moments, and when.

    The view changes without an event at known moments: the extension window
    opens, the trial ends, a standalone plan's period ends (at 00:00 UTC of
    its end date). Each becomes its own step, at that moment, with its reason.
    """
    if until <= since:
        return []
    moments: dict[datetime, list[str]] = {}
    trial = facts.trial
    if trial is not None:
        opens = extension_window_opens(facts, catalog.bundle)
        if opens is not None:
            moments.setdefault(opens, []).append("the extension window opened")
        moments.setdefault(trial.ends_at, []).append(
            f"the trial ended at {trial.ends_at.isoformat()}"
        )
    for subscription in facts.subscriptions:
        end = subscription.period_end
        moments.setdefault(datetime(end.year, end.month, end.day, tzinfo=UTC), []).append(
            f"the {subscription.service} plan ended on {end.isoformat()}"
        )
    steps = []
    previous_view = access_view(facts, catalog, since)
    for moment in sorted(m for m in moments if since < m <= until):
        view = access_view(facts, catalog, moment)
        changes = diff_views(previous_view, view)
        if changes:
            steps.append(
                ExplainedStep(
                    at=moment,
                    cause="time",
                    changes=tuple(changes),
                    summary="; ".join(moments[moment]),
                )
            )
        previous_view = view
    rest = diff_views(previous_view, access_view(facts, catalog, until))
    if rest:  # a rule this list does not know yet: still shown, never hidden
        steps.append(
            ExplainedStep(at=until, cause="time", changes=tuple(rest), summary="time passed")
        )
    return steps


#: Bundle fields compared by --explain; ``days_left`` counts down daily and
#: would drown the real changes.
EXPLAINED_BUNDLE_FIELDS = ("state", "trial_ends_at", "extensions_used", "available_actions")


def diff_views(before: AccessView | None, after: AccessView) -> list[ViewChange]:
    """The differences between two access views (``before`` None: all of ``after``)."""
    old = before.to_dict() if before is not None else None
    new = after.to_dict()
    changes = []
    for name in EXPLAINED_BUNDLE_FIELDS:
        was = None if old is None else old["bundle"][name]
        now = new["bundle"][name]
        if was != now and (old is not None or now not in (None, 0, [])):
            changes.append(ViewChange("bundle", name, was, now))
    old_services: Mapping[str, dict[str, Any]] = (
        {} if old is None else {s["code"]: s for s in old["services"]}
    )
    for service in new["services"]:
        previous = old_services.get(service["code"])
        if old is None and service["edition"] == "none" and service["access"] == "none":
            continue  # a new organization: only what it can use is news
        if previous != service:
            changes.append(
                ViewChange(
                    service["code"],
                    "access",
                    None if previous is None else _cell(previous),
                    _cell(service),
                )
            )
    return changes


def _cell(service: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in service.items() if k != "code"}


def summarise(event: LoggedEvent) -> str:
    """A one-line reason for an event, in an auditor's words."""
    data = event.data
    by = f" by {event.by}" if event.by else ""
    match event.type:
        case "OrganizationRegistered":
            return (
                f"registered {data.get('name')!r} ({data.get('country')}), "
                f"owner {data.get('owner_user_id')}"
            )
        case "StandaloneSubscriptionRecorded":
            return (
                f"{data.get('service')} plan recorded: {data.get('seats')} seats, "
                f"{data.get('billing_period')}, "
                f"{data.get('period_start')} to {data.get('period_end')}"
            )
        case "ServiceAdminsChanged":
            return f"{data.get('service')} super admin set to {data.get('super_admin')}{by}"
        case "TrialStarted":
            return f"trial started{by}, ends {data.get('ends_at')}"
        case "TrialExtended":
            return (
                f"trial extended{by} (extension {data.get('extension_number')}): "
                f"{data.get('previous_end')} to {data.get('new_end')}"
            )
        case "TrialExpired":
            return f"trial end {data.get('ends_at')} passed with no decision"
        case "TrialCancelled":
            return f"trial cancelled{by} ({data.get('reason')})"
        case "ServiceDowngradedToFree":
            return f"{data.get('service')} downgraded to the free edition"
        case "UpgradeCheckoutStarted":
            return f"checkout {data.get('checkout_id')} started{by}"
        case "UpgradeCheckoutFailed":
            return f"checkout {data.get('checkout_id')} failed: {data.get('reason')}"
        case "UpgradePurchased":
            return (
                f"bundle purchased{by}: {data.get('seats')} seats, {data.get('billing_period')}, "
                f"total {data.get('total')} {data.get('currency')}"
            )
        case "StandaloneContractTerminated":
            return (
                f"{data.get('service')} standalone contract ended, "
                f"{data.get('amount_credited')} credited for {data.get('remaining_days')} days"
            )
    return event.type


# ---------------------------------------------------------------------------
# Times on the command line
# ---------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """An ISO 8601 time or date; a date means its midnight UTC, no zone means UTC."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T09:00:00Z)."
        raise InvalidRequest(msg, code="invalid_time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
