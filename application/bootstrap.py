"""The composition root: the one place where real or fake dependencies are wired.

The Flask app factory and every ``suitesub`` command build their services
here, so a process always sees one consistent set (store, clock, catalog,
payment gateway, idempotency keys, test clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.catalog_loader import load_catalog
from application.clocks import SystemClock
from application.idempotency import IdempotencyStore
from application.payments import PaymentGateway, SandboxGateway
from application.service import SuiteSubscriptions
from application.settings import DatabaseSettings, database_settings
from application.sql_tables import SqlTables, tables_for
from application.test_clock import TestClock, TestClockOffset
from application.upgrade import UpgradeCheckouts
from domain.catalog import Catalog
from domain.clock import Clock

#: Builds the payment gateway from the tables beside the event store and the clock.
GatewayFactory = Callable[[SqlTables, Clock], PaymentGateway]


@dataclass
class Services:
    settings: DatabaseSettings
    app: SuiteSubscriptions
    clock: Clock
    catalog: Catalog
    tables: SqlTables
    gateway: PaymentGateway
    checkouts: UpgradeCheckouts
    idempotency: IdempotencyStore
    #: Set only when the service runs with the test clock (SUITE_TEST_CLOCK=1).
    test_clock: TestClock | None = None

    def access_view(self, organization_id: UUID, min_position: int | None = None) -> dict[str, Any]:
        """The access view the API serves (``min_position``: read your own writes).

        Reads the write model for now; the projection can take over here.
        """
        del min_position  # the write model is always caught up
        return self.app.access(organization_id)

    def close(self) -> None:
        self.app.close()


def build_services(
    database_url: str | None = None,
    *,
    clock: Clock | None = None,
    catalog: Catalog | None = None,
    test_clock: bool = False,
    gateway_factory: GatewayFactory | None = None,
) -> Services:
    settings = database_settings(database_url)
    catalog = catalog or load_catalog()
    base_clock = clock or SystemClock()
    shifted = TestClock(base_clock) if test_clock else None
    service_clock: Clock = shifted or base_clock
    app = SuiteSubscriptions(dict(settings.persistence_env), clock=service_clock, catalog=catalog)
    tables = tables_for(app.recorder)
    if shifted is not None:
        # The offset lives in the application's database, which exists only now.
        shifted.attach(TestClockOffset(tables))
    gateway = (gateway_factory or SandboxGateway)(tables, service_clock)
    return Services(
        settings=settings,
        app=app,
        clock=service_clock,
        catalog=catalog,
        tables=tables,
        gateway=gateway,
        checkouts=UpgradeCheckouts(app, gateway),
        idempotency=IdempotencyStore(tables, service_clock),
        test_clock=shifted,
    )
