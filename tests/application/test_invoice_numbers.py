"""Invoice numbers: gapless and increasing per issuer and year, one per charge.

On every store; then racing charges on PostgreSQL, from threads and from
processes, with retries of the same charge among them: the numbers handed
out are exactly 1..N, every charge has one, and a retried charge got the
number its first attempt got.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from application.invoices.numbers import InvoiceNumbers
from application.schema import schema_lock
from application.service import SuiteSubscriptions
from application.settings import database_settings
from application.sql_tables import tables_for
from domain.clock import ManualClock
from tests.conftest import T0, empty_postgres_tables


@pytest.fixture
def numbers(app: SuiteSubscriptions) -> InvoiceNumbers:
    return InvoiceNumbers(tables_for(app.recorder))


def test_the_first_numbers_of_a_year_are_1_2_3(numbers: InvoiceNumbers) -> None:
    allocated = [numbers.allocate(f"chk_{i}", prefix="SS", issued_at=T0) for i in range(3)]
    assert [a.number for a in allocated] == ["SS-2026-000001", "SS-2026-000002", "SS-2026-000003"]
    assert [a.sequence for a in numbers.allocated("SS", 2026)] == [1, 2, 3]


def test_the_same_charge_always_gets_the_same_number_and_issue_time(
    numbers: InvoiceNumbers,
) -> None:
    first = numbers.allocate("chk_a", prefix="SS", issued_at=T0)
    numbers.allocate("chk_b", prefix="SS", issued_at=T0)
    # A retry, or reconcile, days later: the number and its issue time stand.
    again = numbers.allocate("chk_a", prefix="SS", issued_at=T0 + timedelta(days=40))
    assert again == first
    assert again.issued_at == T0
    assert numbers.number_for("chk_a") == first
    assert numbers.number_for("chk_unknown") is None
    assert len(numbers.allocated("SS", 2026)) == 2


def test_each_calendar_year_and_each_issuer_count_from_one(numbers: InvoiceNumbers) -> None:
    last_of_2026 = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert numbers.allocate("a", prefix="SS", issued_at=last_of_2026).number == "SS-2026-000001"
    assert numbers.allocate("b", prefix="SS", issued_at=last_of_2026).number == "SS-2026-000002"
    new_year = datetime(2027, 1, 1, tzinfo=UTC)
    assert numbers.allocate("c", prefix="SS", issued_at=new_year).number == "SS-2027-000001"
    assert numbers.allocate("d", prefix="XY", issued_at=new_year).number == "XY-2027-000001"
    assert numbers.allocate("e", prefix="SS", issued_at=last_of_2026).number == "SS-2026-000003"


def test_numbers_survive_a_restart(shared_store_url: str, clock: ManualClock) -> None:
    for expected in ("SS-2026-000001", "SS-2026-000002"):
        app = SuiteSubscriptions.from_database_url(shared_store_url, clock=clock)
        try:
            numbers = InvoiceNumbers(tables_for(app.recorder))
            assert numbers.allocate(expected, prefix="SS", issued_at=T0).number == expected
        finally:
            app.close()


# -- racing charges on PostgreSQL --------------------------------------------------

CHARGES_PER_WORKER = 25
WORKERS = 4


def charge_keys(worker: int) -> list[str]:
    """Each worker's own charges, plus retries of charges every worker also makes."""
    own = [f"chk_w{worker}_{i}" for i in range(CHARGES_PER_WORKER)]
    shared = [f"chk_shared_{i}" for i in range(10)]
    keys = own + shared
    # Interleave so retries of shared charges race with fresh ones.
    return keys[worker % 3 :: 3] + keys[: worker % 3] + [k for i, k in enumerate(keys) if i % 3]


def allocate_all(url: str, worker: int) -> dict[str, str]:
    """One worker: its own application (own connection pool), its charges in order."""
    with schema_lock(database_settings(url).persistence_env):  # as every process starts
        app = SuiteSubscriptions.from_database_url(url, clock=ManualClock(T0))
    try:
        numbers = InvoiceNumbers(tables_for(app.recorder))
        return {
            key: numbers.allocate(key, prefix="SS", issued_at=T0).number
            for key in dict.fromkeys(charge_keys(worker))
        }
    finally:
        app.close()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    empty_postgres_tables(postgres_database)
    # The allocator's tables exist before the racers start.
    app = SuiteSubscriptions.from_database_url(postgres_database, clock=ManualClock(T0))
    InvoiceNumbers(tables_for(app.recorder))
    app.close()
    return postgres_database


def assert_gapless(url: str, results: list[dict[str, str]]) -> None:
    every_key = {key for result in results for key in result}
    for key in every_key:
        assert len({result[key] for result in results if key in result}) == 1, key
    app = SuiteSubscriptions.from_database_url(url, clock=ManualClock(T0))
    try:
        stored = InvoiceNumbers(tables_for(app.recorder)).allocated("SS", 2026)
    finally:
        app.close()
    assert [a.sequence for a in stored] == list(range(1, len(every_key) + 1))
    assert {a.charge_key for a in stored} == every_key
    assert {a.charge_key: a.number for a in stored} == {
        key: number for result in results for key, number in result.items()
    }


@pytest.mark.postgres
def test_racing_threads_get_gapless_numbers_on_postgres(postgres_url: str) -> None:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(allocate_all, [postgres_url] * WORKERS, range(WORKERS)))
    assert_gapless(postgres_url, results)


@pytest.mark.postgres
def test_racing_processes_get_gapless_numbers_on_postgres(postgres_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS) as pool:
        results = pool.starmap(allocate_all, [(postgres_url, w) for w in range(WORKERS)])
    assert_gapless(postgres_url, results)
