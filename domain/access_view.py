"""The access view of SPEC §4 and §10: a pure function of (facts, catalog, now).

The API, the projections (at read time) and the audit replay tool all call
:func:`access_view`, so they can never disagree about what an organization
could use at a given moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.bundle_state import available_actions, days_left, effective_state
from domain.catalog import Catalog
from domain.clock import ensure_utc
from domain.contract import contract_block
from domain.facts import BundleState, OrganizationFacts

PAID, TRIAL, FREE, NONE = "paid", "trial", "free", "none"
STANDALONE, BUNDLE = "standalone", "bundle"
NOTE_AFTER_UPGRADE = "available in the bundle after upgrade"
NOTE_DECISION = "the trial has ended: upgrade, extend or cancel in the bundle"


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    code: str
    edition: str
    contract: str
    access: str
    url: str | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "edition": self.edition,
            "contract": self.contract,
            "access": self.access,
            "url": self.url,
        }
        if self.note is not None:
            data["note"] = self.note
        return data


@dataclass(frozen=True, slots=True)
class BundleView:
    code: str
    state: str
    trial_ends_at: datetime | None
    days_left: int | None
    extensions_used: int
    available_actions: tuple[str, ...]
    #: The contract block of SPEC §11, from ``active`` on (``None`` before).
    contract: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "state": self.state,
            "trial_ends_at": None if self.trial_ends_at is None else self.trial_ends_at.isoformat(),
            "days_left": self.days_left,
            "extensions_used": self.extensions_used,
            "available_actions": list(self.available_actions),
        }
        if self.contract is not None:
            data["contract"] = self.contract
        return data


@dataclass(frozen=True, slots=True)
class AccessView:
    organization_id: str
    bundle: BundleView
    services: tuple[ServiceAccess, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "bundle": self.bundle.to_dict(),
            "services": [s.to_dict() for s in self.services],
        }


@dataclass(frozen=True, slots=True)
class ServiceRows:
    """The bundle's effective state and every service's row: the part of the
    access view that ``access.changed`` compares (:func:`service_rows`)."""

    state: str
    services: tuple[ServiceAccess, ...]


def service_access(
    catalog: Catalog, org_id: str, code: str, state: str, purchased: bool
) -> ServiceAccess:
    """One cell of the SPEC §4 access matrix (only the URL it shows is formatted)."""
    if state in BundleState.CONTRACTED:
        # past_due is a grace period: access stays (SPEC §11).
        return ServiceAccess(code, PAID, BUNDLE, BUNDLE, catalog.bundle_url(code, org_id))
    if purchased:
        if state == BundleState.TRIAL:
            service = catalog.service(code)
            assert service is not None
            if service.usable_in_bundle_during_trial:
                return ServiceAccess(
                    code, PAID, STANDALONE, BUNDLE, catalog.bundle_url(code, org_id)
                )
            return ServiceAccess(
                code,
                PAID,
                STANDALONE,
                STANDALONE,
                catalog.standalone_url(code, org_id),
                NOTE_AFTER_UPGRADE,
            )
        return ServiceAccess(
            code, PAID, STANDALONE, STANDALONE, catalog.standalone_url(code, org_id)
        )
    if state == BundleState.TRIAL:
        return ServiceAccess(code, TRIAL, BUNDLE, BUNDLE, catalog.bundle_url(code, org_id))
    if state in (BundleState.CANCELLED, BundleState.ENDED):
        return ServiceAccess(code, FREE, NONE, STANDALONE, catalog.standalone_url(code, org_id))
    if state == BundleState.TRIAL_EXPIRED:
        return ServiceAccess(code, NONE, NONE, NONE, None, NOTE_DECISION)
    return ServiceAccess(code, NONE, NONE, NONE, None)


#: The most service cells remembered by :func:`service_cells` (then forgotten at once).
SERVICE_CELLS_REMEMBERED = 4096
_CellsKey = tuple[int, str, str, frozenset[str]]  # the catalog's id, org, state, purchased
_service_cells: dict[_CellsKey, tuple[Catalog, tuple[ServiceAccess, ...]]] = {}


def service_cells(
    catalog: Catalog, org_id: str, state: str, purchased: frozenset[str]
) -> tuple[ServiceAccess, ...]:
    """Every service's cell, in the catalog's order.

    A pure function of its arguments, so its answer is remembered (bounded):
    building the cells was two thirds of :func:`access_view`, the largest part
    of a cached ``GET …/access`` (benchmark access_read_http). Keyed by the
    catalog's ``id``; the entry holds the catalog itself, so that id is not
    reused while the entry lives, and a hit checks it is the same catalog.
    """
    key = (id(catalog), org_id, state, purchased)
    found = _service_cells.get(key)
    if found is not None and found[0] is catalog:
        return found[1]
    cells = tuple(
        service_access(catalog, org_id, code, state, code in purchased)
        for code in catalog.service_codes
    )
    if len(_service_cells) >= SERVICE_CELLS_REMEMBERED:
        _service_cells.clear()  # a dict's clear and set are atomic under threads
    _service_cells[key] = (catalog, cells)
    return cells


def service_rows(facts: OrganizationFacts, catalog: Catalog, now: datetime) -> ServiceRows:
    """The effective state and the services' cells of :func:`access_view` at ``now``,
    without the bundle's block (days left, actions, contract), which the
    integration log's ``access.changed`` does not compare (webhook_delivery)."""
    now = ensure_utc(now)  # a "day" (has a plan ended?) is a UTC calendar day
    state = effective_state(facts, now)
    purchased = frozenset(facts.purchased_services(now.date()))
    return ServiceRows(state, service_cells(catalog, facts.organization_id, state, purchased))


def access_view(facts: OrganizationFacts, catalog: Catalog, now: datetime) -> AccessView:
    now = ensure_utc(now)
    rows = service_rows(facts, catalog, now)
    trial = facts.trial
    bundle = BundleView(
        code=catalog.bundle.code,
        state=rows.state,
        trial_ends_at=None if trial is None else trial.ends_at,
        days_left=days_left(facts, now),
        extensions_used=0 if trial is None else trial.extensions_used,
        available_actions=tuple(available_actions(facts, catalog.bundle, now)),
        contract=contract_block(facts),
    )
    return AccessView(facts.organization_id, bundle, rows.services)
