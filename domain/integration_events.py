"""Integration events (SPEC §12): the public, versioned face of the stream.

A pure mapping from one stored domain event — with the organization's facts
just before it and its position in the log — to zero or more envelopes::

    {"id": "evt_…", "type", "created_at", "organization_id", "position",
     "api_version": "2026-12-01", "data": {…}}

- :data:`TRANSLATIONS` is the one table from domain event class to the
  integration events it announces: adding an event type is one line here.
- ``access.changed`` is derived for *every* event: the access view the
  organization was last told (the view of the facts before the event, at the
  moment of the event before it) against the view right after the event, both
  the state and service rows of the domain's own access view
  (:func:`~domain.access_view.service_rows`, which
  :func:`~domain.access_view.access_view` is built on). A
  change that time alone causes (a trial's end) is announced when the sweep
  records it (``TrialExpired``), so it replays like any other.
- ``id`` is derived from the log position and the type, so every replay,
  retry and redelivery of an envelope carries the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from domain import events as ev
from domain.access_view import ServiceAccess, ServiceRows, service_rows
from domain.catalog import Catalog
from domain.facts import OrganizationFacts

API_VERSION = "2026-12-01"
ACCESS_CHANGED = "access.changed"
INVOICE_ISSUED = "invoice.issued"
_ID_NAMESPACE = UUID("5b0e7f3c-12a4-4c6e-9d52-7d0c5a1e0012")


@dataclass(frozen=True, slots=True)
class IntegrationEvent:
    id: str
    type: str
    created_at: datetime
    organization_id: str
    position: int
    data: Mapping[str, Any]

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "organization_id": self.organization_id,
            "position": self.position,
            "api_version": API_VERSION,
            "data": dict(self.data),
        }


_ID_NAMESPACE_BYTES = _ID_NAMESPACE.bytes
#: RFC 4122's version (5: name-based, SHA-1) and variant bits, as ``uuid.UUID`` sets them.
_VERSION_BITS = (0xF000 << 64) | (0xC000 << 48)
_VERSION_5 = (5 << 76) | (0x8000 << 48)


def integration_event_id(position: int, event_type: str) -> str:
    """The stable id of the ``event_type`` envelope announced at ``position``:
    ``evt_`` and the hex of ``uuid5(_ID_NAMESPACE, f"{position}/{event_type}")``.

    The same digits as :func:`uuid.uuid5`, computed without building two
    ``UUID`` objects per id (a sixth of the integration log's follower in
    the webhook_delivery benchmark; tests/domain/test_integration_event_ids.py).
    """
    name = f"{position}/{event_type}".encode()
    digest = hashlib.sha1(_ID_NAMESPACE_BYTES + name, usedforsecurity=False).digest()
    value = (int.from_bytes(digest[:16]) & ~_VERSION_BITS) | _VERSION_5
    return f"evt_{value:032x}"


#: An event's ``data`` for one type; ``None``: this event does not announce it.
Translation = Callable[[Any], Mapping[str, Any] | None]


def _trial_started(e: ev.TrialStarted) -> Mapping[str, Any]:
    return {
        "by": e.by,
        "trial_ends_at": e.ends_at,
        "carried_over": e.carried_over,
        "usable_in_bundle": e.usable_in_bundle,
        "standalone_only": e.standalone_only,
        "trial_services": e.trial_services,
    }


def _bundle_purchased(e: ev.UpgradePurchased) -> Mapping[str, Any]:
    return {
        "checkout_id": e.checkout_id,
        "by": e.by,
        "currency": e.currency,
        "billing_period": e.billing_period,
        "seats": e.seats,
        "add_ons": e.add_ons,
        "subtotal": e.subtotal,
        "credit": e.credit,
        "tax": e.tax,
        "total": e.total,
        "credits": e.credits,
        "contract_start": e.contract_start,
        "contract_end": e.contract_end,
    }


def _card(payment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The card charged, as a consumer may see it (brand, last 4); ``None``: no charge."""
    if not payment.get("charge_id") and not payment.get("last4"):
        return None
    return {"brand": payment.get("brand"), "last4": payment.get("last4")}


def _bundle_renewed(e: ev.BundleRenewed) -> Mapping[str, Any]:
    return {
        "renewal_id": e.renewal_id,
        "attempt": e.attempt,
        "currency": e.currency,
        "billing_period": e.billing_period,
        "seats": e.seats,
        "add_ons": e.add_ons,
        "period_start": e.period_start,
        "period_end": e.period_end,
        "lines": e.lines,
        "subtotal": e.subtotal,
        "credit_applied": e.credit_applied,
        "tax": e.tax,
        "total": e.total,
        "payment": _card(e.payment),
        "invoice_number": e.invoice["number"],
    }


def _bundle_changed(e: ev.BundleChanged) -> Mapping[str, Any]:
    return {
        "change_id": e.change_id,
        "by": e.by,
        "takes_effect": "now",
        "currency": e.currency,
        "billing_period": e.billing_period,
        "seats": e.seats,
        "add_ons": e.add_ons,
        "changes": e.changes,
        "new_period": e.new_period,
        "period_start": e.period_start,
        "period_end": e.period_end,
        "lines": e.lines,
        "subtotal": e.subtotal,
        "credit_applied": e.credit_applied,
        "tax": e.tax,
        "total": e.total,
        "payment": _card(e.payment),
        "invoice_number": e.invoice["number"],
    }


def _bundle_change_scheduled(e: ev.BundleChangeScheduled) -> Mapping[str, Any]:
    return {
        "change_id": e.change_id,
        "by": e.by,
        "takes_effect": "at_renewal",
        "takes_effect_at": e.takes_effect_at,
        "scheduled_change": e.scheduled_change,
        "replaces": e.replaces,
    }


#: Domain event class → the integration events it announces, each with its
#: ``data``. Besides these, every event announces ``invoice.issued`` when it
#: records an invoice (``OrganizationEvent.issued_invoice``, the one rule),
#: then ``access.changed`` when the access view changed.
TRANSLATIONS: Mapping[type[ev.OrganizationEvent], tuple[tuple[str, Translation], ...]] = {
    ev.TrialStarted: (("trial.started", _trial_started),),
    ev.TrialEndReminderRecorded: (("trial.will_end", lambda e: {"trial_ends_at": e.ends_at}),),
    ev.TrialExtended: (
        (
            "trial.extended",
            lambda e: {
                "by": e.by,
                "previous_end": e.previous_end,
                "trial_ends_at": e.new_end,
                "extension_number": e.extension_number,
            },
        ),
    ),
    ev.TrialExpired: (("trial.expired", lambda e: {"trial_ended_at": e.ends_at}),),
    ev.TrialCancelled: (("trial.cancelled", lambda e: {"by": e.by, "reason": e.reason}),),
    ev.ServiceDowngradedToFree: (("service.downgraded_to_free", lambda e: {"service": e.service}),),
    ev.UpgradePurchased: (("bundle.purchased", _bundle_purchased),),
    ev.RenewalReminderRecorded: (
        (
            "bundle.renewal_upcoming",
            lambda e: {
                "renews_at": e.renews_at,
                "billing_period": e.billing_period,
                "seats": e.seats,
            },
        ),
    ),
    ev.BundleRenewed: (("bundle.renewed", _bundle_renewed),),
    ev.RenewalPaymentFailed: (
        (
            "bundle.payment_failed",
            lambda e: {
                "renewal_id": e.renewal_id,
                "attempt": e.attempt,
                "reason": e.reason,
                "next_attempt_at": e.next_attempt_at,
                "final": e.next_attempt_at is None,
            },
        ),
    ),
    ev.BundleCancellationScheduled: (
        (
            "bundle.cancellation_scheduled",
            lambda e: {"by": e.by, "effective_at": e.effective_at},
        ),
    ),
    ev.BundleCancellationWithdrawn: (("bundle.cancellation_withdrawn", lambda e: {"by": e.by}),),
    ev.BundleEnded: (("bundle.ended", lambda e: {"reason": e.reason, "by": e.by}),),
    ev.BundleChanged: (("bundle.changed", _bundle_changed),),
    ev.BundleChangeScheduled: (("bundle.changed", _bundle_change_scheduled),),
}

#: Every integration event type, in the order docs/webhooks.md lists them.
EVENT_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *(name for translations in TRANSLATIONS.values() for name, _ in translations),
            INVOICE_ISSUED,
            ACCESS_CHANGED,
        )
    )
)


def _row_changed(old: ServiceAccess, row: ServiceAccess) -> bool:
    """Whether a service's edition, contract, access or URL changed (not its note)."""
    return (
        old.edition != row.edition
        or old.contract != row.contract
        or old.access != row.access
        or old.url != row.url
    )


def access_changes(before: ServiceRows | None, after: ServiceRows) -> dict[str, Any] | None:
    """``access.changed``'s data: the services whose edition, contract, access or URL
    changed, each with its new row and the previous one; ``None`` if none changed.

    Written for the integration log's follower, which runs it for every event
    (webhook_delivery): fields compared one by one, each row's dict built once.
    """
    previous = {} if before is None else {row.code: row for row in before.services}
    changed = []
    for row in after.services:
        old = previous.get(row.code)
        if old is None or _row_changed(old, row):
            data = row.to_dict()
            data["previous"] = None if old is None else old.to_dict()
            changed.append(data)
    if not changed:
        return None
    return {
        "bundle_state": after.state,
        "previous_bundle_state": None if before is None else before.state,
        "services": changed,
    }


@dataclass(frozen=True, slots=True)
class Before:
    """The organization just before an event: its facts and when it last changed,
    and (when the caller kept it) the access it was last told: the service rows
    of those facts at that moment, i.e. the previous :class:`Announced` ``view``."""

    facts: OrganizationFacts | None
    at: datetime | None
    view: ServiceRows | None = None


class Announced(NamedTuple):
    envelopes: tuple[IntegrationEvent, ...]
    #: The organization's facts after the event.
    facts: OrganizationFacts
    #: Its service rows right after the event (the next event's ``Before.view``).
    view: ServiceRows


def announce(
    event: ev.OrganizationEvent, position: int, before: Before, catalog: Catalog
) -> Announced:
    """The envelopes ``event`` (stored at ``position``) announces, and the facts after it."""
    facts = event.fold(before.facts)
    organization_id = str(event.originator_id)
    found: list[IntegrationEvent] = [
        IntegrationEvent(
            id=integration_event_id(position, name),
            type=name,
            created_at=event.at,
            organization_id=organization_id,
            position=position,
            data=data,
        )
        for name, translate in TRANSLATIONS.get(type(event), ())
        if (data := translate(event)) is not None
    ]
    invoice = event.issued_invoice
    if invoice is not None:
        found.append(
            IntegrationEvent(
                id=integration_event_id(position, INVOICE_ISSUED),
                type=INVOICE_ISSUED,
                created_at=event.at,
                organization_id=organization_id,
                position=position,
                data=invoice,
            )
        )
    previous_view = before.view
    if previous_view is None and before.facts is not None and before.at is not None:
        previous_view = service_rows(before.facts, catalog, before.at)
    view = service_rows(facts, catalog, event.at)
    changes = access_changes(previous_view, view)
    if changes is not None and before.facts is not None:
        found.append(
            IntegrationEvent(
                id=integration_event_id(position, ACCESS_CHANGED),
                type=ACCESS_CHANGED,
                created_at=event.at,
                organization_id=organization_id,
                position=position,
                data=changes,
            )
        )
    return Announced(tuple(found), facts, view)
