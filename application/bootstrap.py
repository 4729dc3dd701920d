"""The composition root: the one place where real or fake dependencies are wired.

The Flask app factory and every ``suitesub`` command build their services
here, so a process always sees one consistent set (store, clock, catalog,
payment gateway, idempotency keys, test clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from application.catalog_loader import load_catalog
from application.clocks import SystemClock
from application.idempotency import IdempotencyStore
from application.invoices.numbers import InvoiceNumbers
from application.invoices.projection import InvoicesReadModel, construct_invoices_view
from application.payments import PaymentGateway, SandboxGateway
from application.plan_changes import PlanChanges
from application.projections.read_model import ReadModel, construct_views
from application.renewals import Renewals, ViewsDue
from application.schema import schema_lock
from application.service import SuiteSubscriptions
from application.settings import (
    DatabaseSettings,
    ViewSettings,
    database_settings,
    pinned_test_clock_start,
)
from application.sql_tables import SqlTables, tables_for
from application.test_clock import TestClock, TestClockStore
from application.upgrade import UpgradeCheckouts
from application.view_faults import ViewFaults
from application.webhooks.nats_sink import NatsSettings
from application.webhooks.runner import Webhooks
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
    #: Mid-term plan changes, charged in §5's order (SPEC §11).
    plan_changes: PlanChanges
    idempotency: IdempotencyStore
    #: Invoice numbers, gapless per issuer and year (docs/domain.md "Invoices").
    invoice_numbers: InvoiceNumbers
    #: The projections: access views, the operators' directory, view lag.
    read_model: ReadModel
    #: Integration events, webhook endpoints and their delivery (SPEC §12).
    webhooks: Webhooks
    #: The invoices view, its follower and reader (application/invoices/projection.py).
    invoices: InvoicesReadModel
    #: Renewals, dunning and the card on file (SPEC §11).
    renewals: Renewals
    #: Set only when the service runs with the test clock (SUITE_TEST_CLOCK=1).
    test_clock: TestClock | None = None
    #: Events the views could not decode or apply (application/view_faults.py).
    view_faults: ViewFaults | None = None

    def close(self) -> None:
        self.webhooks.close()
        self.invoices.close()
        self.read_model.close()
        self.app.close()


def build_services(
    database_url: str | None = None,
    *,
    clock: Clock | None = None,
    catalog: Catalog | None = None,
    test_clock: bool = False,
    gateway_factory: GatewayFactory | None = None,
    view_settings: ViewSettings | None = None,
) -> Services:
    settings = database_settings(database_url)
    settings.ensure_directory()
    catalog = catalog or load_catalog()
    base_clock = clock or SystemClock()
    shifted = TestClock(base_clock) if test_clock else None
    service_clock: Clock = shifted or base_clock
    # Several processes may start at once: create tables one process at a time.
    with schema_lock(settings.persistence_env):
        app = SuiteSubscriptions(
            dict(settings.persistence_env), clock=service_clock, catalog=catalog
        )
        tables = tables_for(app.recorder)
        if shifted is not None:
            # The clock lives in the application's database, which exists only now.
            shifted.attach(
                TestClockStore(tables),
                latest_event_at=app.latest_event_at,
                start=pinned_test_clock_start(),
            )
        gateway = (gateway_factory or SandboxGateway)(tables, service_clock)
        idempotency = IdempotencyStore(tables, service_clock)
        invoice_numbers = InvoiceNumbers(tables)
        app.use_invoice_numbers(invoice_numbers)
        views = construct_views(app)
        invoices_view = construct_invoices_view(app)
        view_faults = ViewFaults(tables)
        webhooks = Webhooks(app, tables, catalog, service_clock, nats=NatsSettings.from_env())
    resolved_view_settings = view_settings or ViewSettings.from_env(settings.kind)
    read_model = ReadModel(
        app,
        views,
        clock=service_clock,
        catalog=catalog,
        settings=resolved_view_settings,
        faults=view_faults,
    )
    return Services(
        settings=settings,
        app=app,
        clock=service_clock,
        catalog=catalog,
        tables=tables,
        gateway=gateway,
        checkouts=UpgradeCheckouts(app, gateway),
        plan_changes=PlanChanges(app, gateway, invoice_numbers),
        idempotency=idempotency,
        invoice_numbers=invoice_numbers,
        read_model=read_model,
        webhooks=webhooks,
        invoices=InvoicesReadModel(
            app, invoices_view, settings=resolved_view_settings, faults=view_faults
        ),
        renewals=Renewals(app, gateway, invoice_numbers, ViewsDue(read_model)),
        test_clock=shifted,
        view_faults=view_faults,
    )
