"""Fixtures for the console: the same services and app as the API's tests, on the
in-memory store with the clock pinned at T0 (the pages call the same services
on every store; the stores themselves are tested in the other rings)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

import pytest
from flask import Flask
from flask.testing import FlaskClient

from application.bootstrap import Services, build_services
from domain.catalog import Catalog
from domain.clock import ManualClock
from interface.app import create_app
from tests.console.story import csrf_of, register_the_article_organization

SECRET = "console-test-secret-" + "x" * 32


@pytest.fixture
def services(clock: ManualClock, catalog: Catalog) -> Iterator[Services]:
    built = build_services("memory://", clock=clock, catalog=catalog, test_clock=True)
    yield built
    built.close()


@pytest.fixture
def console_app(services: Services) -> Flask:
    return create_app({"SERVICES": services, "JWT_SECRET": SECRET})


@pytest.fixture
def browser(console_app: Flask) -> FlaskClient:
    """A browser without JavaScript: cookies kept, forms posted as they are."""
    return console_app.test_client()


@pytest.fixture
def organization(services: Services) -> UUID:
    return register_the_article_organization(services.app)


SignIn = Callable[..., str]


@pytest.fixture
def sign_in(browser: FlaskClient) -> SignIn:
    """Sign in through the development sign-in page; answers the CSRF token of the session."""

    def as_(user_id: str | None = None, organization_id: UUID | None = None) -> str:
        page = browser.get("/console/sign-in").get_data(as_text=True)
        if user_id is None:
            form = {"csrf_token": csrf_of(page), "as": "operator"}
        else:
            form = {
                "csrf_token": csrf_of(page),
                "organization_id": str(organization_id),
                "user_id": user_id,
            }
        answer = browser.post("/console/sign-in", data=form)
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return csrf_of(browser.get(answer.location).get_data(as_text=True))

    return as_
