"""console_page: an organization's console home page per second over HTTP.

``GET /console/orgs/{org}/`` — the administrator's first page (the access
view, the trial banner, the services table), rendered by the service under
gunicorn with two sync workers for a signed-in user (session cookie), on a
store holding a thousand other organizations; against a bare Flask app that
renders the same template with the same context per request, as the service
does, but reads no session, token, view or aggregate (``benchmarks.bare_app``):
the ratio is what serving the page costs beyond rendering it. Both answer the
same HTML (checked). Same load generator, interleaved runs, best of each.
"""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from uuid import UUID

from application.bootstrap import build_services
from application.catalog_loader import default_catalog
from benchmarks.access_read_http import (
    JWT_SECRET,
    OTHER_ORGANIZATIONS,
    WORKERS,
    _get,
    _gunicorn,
    _measure_interleaved,
)
from benchmarks.harness import BenchmarkResult, Profile, ratio
from benchmarks.organizations import SUPER_ADMIN, T0, registered_with_crm, save_all
from benchmarks.stores import scratch_dir, store
from domain.clock import ManualClock
from domain.facts import facts_to_dict

NAME = "console_page"
TARGET = ">= 0.5"


def run(profile: Profile, store_kind: str = "sqlite") -> BenchmarkResult:
    with store(store_kind, NAME) as url, scratch_dir(NAME) as scratch:
        organization_id = _populate(url, profile)
        path = f"/console/orgs/{organization_id}/"
        environment = {
            "SUITE_DATABASE_URL": url,
            "SUITE_JWT_SECRET": JWT_SECRET,
            "SUITE_VAR_DIR": str(scratch),
            "SUITE_TEST_CLOCK": "1",
            "SUITE_TEST_CLOCK_START": T0.isoformat(),
        }
        bare_path = f"/bare/orgs/{organization_id}/"
        english = {"Cookie": "console_lang=en"}
        with _gunicorn("wsgi:app", environment, scratch / "service.log") as service_server:
            headers = {"Cookie": _signed_in_cookies(service_server.base, organization_id)}
            html = _get(service_server.base + path, headers)
            _save_page_context(url, organization_id, html, scratch / "page.json")
            bare_environment = {"BENCH_BARE_PAGE": str(scratch / "page.json")}
            with _gunicorn(
                "benchmarks.bare_app:app", bare_environment, scratch / "bare.log"
            ) as bare_server:
                bare_html = _get(bare_server.base + bare_path, english)
                (service, service_cpu), (baseline, baseline_cpu) = _measure_interleaved(
                    (service_server, path, headers), (bare_server, bare_path, english), profile
                )
    # The same page: only the language switch's "come back here" path differs.
    assert bare_html.replace(bare_path.encode(), path.encode()) == html, "not the same page"
    return BenchmarkResult(
        name=NAME if store_kind == "sqlite" else f"{NAME}_{store_kind}",
        value=service.per_second,
        unit="pages/s",
        baseline=baseline.per_second,
        ratio=ratio(service.per_second, baseline.per_second),
        target=TARGET,
        store=store_kind,
        details={
            "load_generator": service.tool,
            "connections": profile.http_connections,
            "seconds": profile.http_seconds,
            "workers": WORKERS,
            "page_bytes": len(html),
            "service_requests": service.requests,
            "baseline_requests": baseline.requests,
            "service_cpu_us_per_request": round(service_cpu, 1),
            "baseline_cpu_us_per_request": round(baseline_cpu, 1),
        },
    )


def _populate(url: str, profile: Profile) -> str:
    """Other organizations, then the one measured: pays for CRM, in its trial."""
    clock = ManualClock(T0)
    services = build_services(url, clock=clock, catalog=default_catalog())
    try:
        app, catalog = services.app, services.catalog
        others = OTHER_ORGANIZATIONS if profile.name != "tiny" else 20
        save_all(app, (registered_with_crm(catalog) for _ in range(others)))
        [organization_id] = save_all(app, [registered_with_crm(catalog, T0)])
        app.start_trial(organization_id, by=SUPER_ADMIN)
        services.read_model.catch_up()
    finally:
        services.close()
    return str(organization_id)


def _save_page_context(url: str, organization_id: str, html: bytes, target: Path) -> None:
    """What the home page was rendered from: the view, the facts, who, the CSRF token."""
    services = build_services(url, clock=ManualClock(T0), catalog=default_catalog())
    try:
        view = services.read_model.access(UUID(organization_id))
        facts = services.app.facts(UUID(organization_id))
    finally:
        services.close()
    token = re.search(rb'name="csrf_token" value="([^"]+)"', html)
    assert token, "the page has its forms' CSRF token"
    context = {
        "template": "console/home.html",
        "view": view,
        "facts": facts_to_dict(facts),
        "user_id": SUPER_ADMIN,
        "organization_id": organization_id,
        "csrf_token": token.group(1).decode(),
    }
    target.write_text(json.dumps(context, default=str))


def _signed_in_cookies(base: str, organization_id: str) -> str:
    """Sign in through the development sign-in page, as a browser would."""
    host, port = base.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/console/sign-in")
        answer = connection.getresponse()
        page = answer.read().decode()
        cookie = _cookie(answer.getheader("Set-Cookie", ""))
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "the sign-in page has a CSRF token"
        form = (
            f"csrf_token={token.group(1)}&organization_id={organization_id}&user_id={SUPER_ADMIN}"
        )
        connection.request(
            "POST",
            "/console/sign-in",
            body=form,
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 302, answer.status
        # English, whatever the organization's country: the same page every request.
        return f"{_cookie(answer.getheader('Set-Cookie', ''))}; console_lang=en"
    finally:
        connection.close()


def _cookie(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0]
