"""The composition root: the one place where real or fake dependencies are wired.

The Flask app factory and every ``suitesub`` command build their services
here, so a process always sees one consistent set (store, clock, catalog).
"""

from __future__ import annotations

from dataclasses import dataclass

from application.catalog_loader import load_catalog
from application.clocks import SystemClock
from application.service import SuiteSubscriptions
from application.settings import DatabaseSettings, database_settings
from domain.catalog import Catalog
from domain.clock import Clock


@dataclass
class Services:
    settings: DatabaseSettings
    app: SuiteSubscriptions
    clock: Clock
    catalog: Catalog

    def close(self) -> None:
        self.app.close()


def build_services(
    database_url: str | None = None,
    *,
    clock: Clock | None = None,
    catalog: Catalog | None = None,
) -> Services:
    settings = database_settings(database_url)
    catalog = catalog or load_catalog()
    clock = clock or SystemClock()
    app = SuiteSubscriptions(dict(settings.persistence_env), clock=clock, catalog=catalog)
    return Services(settings=settings, app=app, clock=clock, catalog=catalog)
