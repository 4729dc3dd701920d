"""Who may start the bundle trial without losing existing data (SPEC §4).

Let P be the services with a paid standalone plan whose period has not
ended. With P empty, the owner or any admin of any service may start the
trial. Otherwise the user must hold admin rights (admin or super admin) on
*every* service in P; a user who is super admin of every service in P holds
exactly those rights, so one test covers both wordings of the rule. Anyone
else is refused with the services they lack rights on and each service's
super admin, so the caller can unify the super admin or ask the right person.

The same rule decides who may extend, cancel or upgrade; the user who
started the trial (the bundle's super admin) may always do so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from domain.facts import OrganizationFacts


@dataclass(frozen=True, slots=True)
class CarryOverDecision:
    allowed: bool
    #: P: the purchased services whose data carries over into the bundle.
    purchased: tuple[str, ...]
    missing_admin_rights: tuple[str, ...]
    super_admins: dict[str, str | None]


def who_may_start_trial(facts: OrganizationFacts, user_id: str, on: date) -> CarryOverDecision:
    """Decide whether ``user_id`` may start (or act on) the trial ``on`` that day."""
    purchased = facts.purchased_services(on)
    super_admins: dict[str, str | None] = {}
    for service in purchased:
        admins = facts.admins_of(service)
        super_admins[service] = None if admins is None else admins.super_admin
    if not purchased:
        is_admin_somewhere = any(a.has_admin_rights(user_id) for a in facts.service_admins)
        allowed = user_id == facts.owner_user_id or is_admin_somewhere
        return CarryOverDecision(allowed, (), (), {})
    missing = tuple(
        service
        for service in purchased
        if (admins := facts.admins_of(service)) is None or not admins.has_admin_rights(user_id)
    )
    return CarryOverDecision(not missing, purchased, missing, super_admins)


def may_act_on_bundle(facts: OrganizationFacts, user_id: str, on: date) -> CarryOverDecision:
    """Extend, cancel and upgrade: the trial's initiator, or whoever the rule allows."""
    decision = who_may_start_trial(facts, user_id, on)
    if facts.trial is not None and facts.trial.started_by == user_id:
        return CarryOverDecision(True, decision.purchased, (), decision.super_admins)
    return decision
