"""renewal_sweep: renewals recorded per second by the sweep, with many contracts due at once.

Subject: ``Renewals.sweep_all`` — for every due contract (10,000 in the full
profile) the views are read, the aggregate loaded, the intent recorded
(``RenewalChargeStarted``, one save per batch), the sandbox gateway charged
under the intent's key, the invoice number allocated and ``BundleRenewed``
with its invoice recorded (one save per batch), the views brought up to date.
Baseline: command_throughput's raw one on the same store — the least an
eventsourcing application can do for one command (load a two-event
aggregate, trigger one event, save it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from application.bootstrap import build_services
from application.catalog_loader import default_catalog
from application.settings import database_settings
from benchmarks.command_throughput import RawApplication, _counters, _increment_each
from benchmarks.harness import BenchmarkResult, Profile, ratio, timed
from benchmarks.organizations import T0, save_all
from benchmarks.stores import store
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.organization import Organization
from domain.quote import UpgradeRequest, add_calendar_months

NAME = "renewal_sweep"
TARGET = ">= 0.5"
#: Contracts due at once, per profile.
CONTRACTS = {"tiny": 40, "quick": 1_000, "full": 10_000}
SWEEP_BATCH = 200
BASELINE_COMMANDS = 2_000
CONTACT = {"company_name": "Bench KK", "country": "JP", "email": "billing@bench.example"}


def contract(
    catalog: Catalog, payment: dict[str, Any], index: int, at: datetime = T0
) -> Organization:
    """An organization that bought the bundle (monthly, 5 seats, one add-on) at ``at``."""
    organization = Organization.register(
        organization_id=uuid4(), name="Bench K.K.", country="JP", owner_user_id="u-owner", at=at
    )
    request = UpgradeRequest("monthly", 5)
    quote = organization.quote(request, at=at, catalog=catalog)
    organization.begin_checkout(
        checkout_id=f"chk_{uuid4().hex}",
        by="u-owner",
        request=request,
        billing_contact=CONTACT,
        expected_total=quote.total,
        idempotency_key=None,
        at=at,
        catalog=catalog,
    )
    pending = organization.facts.pending_checkout
    assert pending is not None
    organization.complete_checkout(
        checkout_id=pending.checkout_id,
        payment=payment,
        at=at,
        # Numbered apart from the allocator's (the renewals' numbers are allocated).
        invoice_number=f"SU-{at.year}-{index + 1:06d}",
        invoice_issued_at=at,
        catalog=catalog,
    )
    return organization


def run(profile: Profile, store_kind: str = "sqlite") -> BenchmarkResult:
    catalog = default_catalog()
    count = CONTRACTS.get(profile.name, CONTRACTS["quick"])
    clock = ManualClock(T0)
    with store(store_kind, NAME) as url:
        services = build_services(url, clock=clock, catalog=catalog)
        baseline = RawApplication(dict(database_settings(url).persistence_env))
        try:
            card = services.gateway.save_payment_method("tok_visa")
            payment = {
                "gateway": services.gateway.name,
                "charge_id": "ch_bench",
                "brand": card.brand,
                "last4": card.last4,
                "payment_method": card.reference,
            }
            save_all(services.app, (contract(catalog, payment, i) for i in range(count)))
            services.read_model.catch_up()
            # The baseline runs half just before the sweep and half just after
            # it: on a shared machine whose load drifts over the sweep's
            # seconds, one measurement after it alone compared the sweep with
            # a different machine (runs gave baselines of 191-2 283/s).
            commands = min(BASELINE_COMMANDS, max(count, 200))
            before, after = _counters(baseline, commands // 2), _counters(baseline, commands // 2)
            commands = len(before) + len(after)
            baseline_before = timed(lambda: _increment_each(baseline, before))
            # Every contract was bought at T0: all fall due at once, a month later.
            clock.set(add_calendar_months(T0, 1))
            report_holder: list[Any] = []
            subject_seconds = timed(
                lambda: report_holder.append(services.renewals.sweep_all(batch=SWEEP_BATCH))
            )
            baseline_after = timed(lambda: _increment_each(baseline, after))
            baseline_seconds = baseline_before + baseline_after
            report = report_holder[0]
            renewed = len(report.renewed)
            assert renewed == count, f"renewed {renewed} of {count}: {report.to_dict()}"
        finally:
            services.close()
            baseline.close()
    value, base = renewed / subject_seconds, commands / baseline_seconds
    return BenchmarkResult(
        name=NAME if store_kind == "sqlite" else f"{NAME}_{store_kind}",
        value=value,
        unit="renewals/s",
        baseline=base,
        ratio=ratio(value, base),
        target=TARGET,
        store=store_kind,
        details={
            "contracts_due": count,
            "batch": SWEEP_BATCH,
            "baseline_commands": commands,
            "sweep_seconds": round(subject_seconds, 3),
            "baseline_before_per_s": round(len(before) / baseline_before, 1),
            "baseline_after_per_s": round(len(after) / baseline_after, 1),
        },
    )
