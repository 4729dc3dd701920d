"""Racing purchases on PostgreSQL get gapless invoice numbers (SPEC §11).

Several threads, then several processes, each with its own services (its own
connection pool), buy the bundle for different organizations at the same
moment, through the whole purchase saga (checkout, gateway charge, number,
record). The numbers on the receipts are exactly 1..N, each once; each is
recorded in its organization's ``UpgradePurchased`` and shown by the invoices
view, and the allocator's table holds nothing else.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest

from application.bootstrap import build_services
from application.invoices.numbers import InvoiceNumbers
from application.schema import schema_lock
from application.settings import database_settings
from application.upgrade import PurchaseRequest
from domain.clock import ManualClock
from domain.invoice import format_invoice_number
from tests.application.helpers import CONTACT, SPEC_REQUEST, organization_in_trial
from tests.conftest import T0, empty_postgres_tables

pytestmark = pytest.mark.postgres

ORGANIZATIONS = 8
WORKERS = 4


def organizations(url: str) -> list[str]:
    services = build_services(url, clock=ManualClock(T0))
    try:
        return [str(organization_in_trial(services.app)) for _ in range(ORGANIZATIONS)]
    finally:
        services.close()


def buy_all(url: str, orgs: list[str], barrier: threading.Barrier | None = None) -> dict[str, str]:
    """One racer: its own services; buys for its organizations; org → invoice number."""
    with schema_lock(database_settings(url).persistence_env):
        services = build_services(url, clock=ManualClock(T0))
    try:
        if barrier is not None:
            barrier.wait()
        numbers = {}
        for org in orgs:
            total = services.app.quote(UUID(org), SPEC_REQUEST).total
            receipt = services.checkouts.purchase(
                UUID(org),
                by="u-alice",
                purchase=PurchaseRequest(SPEC_REQUEST, CONTACT, total, "tok_visa"),
                idempotency_key=f"key-{org}",
            )
            numbers[org] = receipt["invoice_number"]
        return numbers
    finally:
        services.close()


def assert_gapless(url: str, numbers: dict[str, str]) -> None:
    expected = [format_invoice_number("SS", 2026, n) for n in range(1, ORGANIZATIONS + 1)]
    assert sorted(numbers.values()) == expected
    services = build_services(url, clock=ManualClock(T0))
    try:
        stored = InvoiceNumbers(services.tables).allocated("SS", 2026)
        assert [a.number for a in stored] == expected
        services.invoices.catch_up()
        for org, number in numbers.items():
            events = services.app.organization_events(UUID(org), limit=100)["events"]
            (purchased,) = [e for e in events if e["type"] == "UpgradePurchased"]
            assert purchased["data"]["invoice"]["number"] == number
            listed = services.invoices.invoices(UUID(org))["invoices"]
            assert [i["number"] for i in listed] == [number]
    finally:
        services.close()


def shares(orgs: list[str]) -> list[list[str]]:
    return [orgs[worker::WORKERS] for worker in range(WORKERS)]


@pytest.fixture
def url(postgres_database: str) -> str:
    empty_postgres_tables(postgres_database)
    return postgres_database


def test_racing_threads_buy_with_gapless_invoice_numbers(url: str) -> None:
    orgs = organizations(url)
    barrier = threading.Barrier(WORKERS)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(buy_all, [url] * WORKERS, shares(orgs), [barrier] * WORKERS))
    numbers = {org: number for result in results for org, number in result.items()}
    assert sorted(numbers) == sorted(orgs)
    assert_gapless(url, numbers)


def test_racing_processes_buy_with_gapless_invoice_numbers(url: str) -> None:
    orgs = organizations(url)
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(buy_all, [(url, share) for share in shares(orgs)])
    numbers = {org: number for result in results for org, number in result.items()}
    assert sorted(numbers) == sorted(orgs)
    assert_gapless(url, numbers)
