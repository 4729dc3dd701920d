"""Organizations with realistic histories, built through the domain so every
event is valid and chained, then saved many at a time to keep set-up short."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from application.service import SuiteSubscriptions
from domain.catalog import Catalog
from domain.organization import Organization

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SUPER_ADMIN = "u-alice"
SAVE_BATCH = 200


def registered_with_crm(catalog: Catalog, at: datetime = T0) -> Organization:
    """An organization that pays for CRM; ``u-alice`` may start its trial."""
    organization = Organization.register(
        organization_id=uuid4(), name="Acme K.K.", country="JP", owner_user_id="u-owner", at=at
    )
    organization.record_standalone_subscription(
        service="crm",
        seats=5,
        billing_period="yearly",
        amount_paid=120_000,
        period_start=date(2026, 1, 1),
        period_end=date(2027, 1, 1),
        super_admin=SUPER_ADMIN,
        admins=["u-bob"],
        by=None,
        at=at,
        catalog=catalog,
    )
    return organization


def with_history(catalog: Catalog, events: int, at: datetime = T0) -> Organization:
    """An organization whose stream holds exactly ``events`` events.

    After registration and a CRM plan, the stream is what a long-lived
    customer accumulates: admin changes, one a minute.
    """
    assert events >= 2
    organization = registered_with_crm(catalog, at)
    for index in range(events - 2):
        organization.change_service_admins(
            service="crm",
            super_admin=SUPER_ADMIN,
            admins=[f"u-admin-{index % 7}"],
            by=SUPER_ADMIN,
            by_operator=False,
            at=at + timedelta(minutes=index + 1),
            catalog=catalog,
        )
    return organization


def save_all(app: SuiteSubscriptions, organizations: Iterable[Organization]) -> list[UUID]:
    """Save pending events of many organizations, ``SAVE_BATCH`` per transaction."""
    ids: list[UUID] = []
    for batch in _batches(organizations, SAVE_BATCH):
        app.save(*batch)
        ids.extend(organization.id for organization in batch)
    return ids


def _batches(items: Iterable[Organization], size: int) -> Iterator[list[Organization]]:
    batch: list[Organization] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
