"""The console's pages through Flask's test client: a browser without JavaScript."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from flask import Flask
from flask.testing import FlaskClient

from application.bootstrap import Services, build_services
from domain.catalog import Catalog
from domain.clock import ManualClock
from domain.quote import AddOnRequest, UpgradeRequest
from interface.app import create_app
from interface.auth import mint_token
from interface.console.security import CONTENT_SECURITY_POLICY
from tests.console.conftest import SECRET, SignIn
from tests.console.story import (
    CRM_SUPER_ADMIN,
    DESK_SUPER_ADMIN,
    buy_the_bundle,
    csrf_of,
    register_the_article_organization,
    unify_the_super_admin,
)

ENGLISH = {"Accept-Language": "en"}


def text(answer: object) -> str:
    return answer.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


# -- protection -----------------------------------------------------------------------


def test_every_page_has_the_csp_and_no_inline_script_or_style(
    browser: FlaskClient, sign_in: SignIn, organization: UUID, clock: ManualClock
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    pages = [
        f"/console/orgs/{organization}/",
        f"/console/orgs/{organization}/upgrade",
        f"/console/orgs/{organization}/upgrade/payment?seats=5&billing_period=monthly",
        f"/console/orgs/{organization}/trial/cancellation",
    ]
    for path in pages:
        answer = browser.get(path, headers=ENGLISH)
        assert answer.status_code in (200, 409), path
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        html = text(answer)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {path}"
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler on {path}"
        assert not re.search(r"\sstyle=", html), f"inline style on {path}"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Cache-Control"] == "no-store"


def test_assets_are_served_by_the_console_itself(browser: FlaskClient) -> None:
    html = text(browser.get("/console/sign-in"))
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|svg))"', html)
    assert assets, "the page loads its script and stylesheet"
    for asset in assets:
        assert asset.startswith("/console/static/"), asset
        assert browser.get(asset).status_code == 200


def test_a_form_posted_without_the_session_csrf_token_is_refused_and_changes_nothing(
    browser: FlaskClient, sign_in: SignIn, organization: UUID, services: Services
) -> None:
    unify_the_super_admin(services.app, organization)
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    version = services.app.get_organization(organization).version
    for form in ({}, {"csrf_token": "forged"}):
        answer = browser.post(f"/console/orgs/{organization}/trial", data=form, headers=ENGLISH)
        assert answer.status_code == 400
        assert "The form has expired" in text(answer)
    assert services.app.get_organization(organization).version == version


def test_the_session_cookie_is_httponly_and_lax_and_secure_only_in_production(
    services: Services, organization: UUID
) -> None:
    for environment, secure in ((None, False), ("production", True)):
        app = create_app({"SERVICES": services, "JWT_SECRET": SECRET, "ENV": environment})
        client = app.test_client()
        answer = client.get("/console/sign-in")
        cookie = answer.headers["Set-Cookie"]
        assert cookie.startswith("suitesub_console=")
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Path=/console" in cookie
        assert ("Secure" in cookie) is secure


def test_a_request_without_the_session_cookie_gets_an_empty_session_and_signing_in_works(
    browser: FlaskClient, sign_in: SignIn, organization: UUID
) -> None:
    """The console's session interface skips the signer when no cookie is sent
    (benchmark access_read_http); a signed-in cookie is still read, and an
    altered one is an empty session."""
    assert "Set-Cookie" not in browser.get("/healthz").headers
    sign_in("u-alice", organization)
    assert browser.get(f"/console/orgs/{organization}/").status_code == 200
    browser.set_cookie("suitesub_console", "altered", path="/console")
    assert browser.get(f"/console/orgs/{organization}/").status_code in (302, 303)


def test_in_production_a_pasted_token_signs_in_and_the_development_sign_in_is_gone(
    services: Services, organization: UUID
) -> None:
    app = create_app({"SERVICES": services, "JWT_SECRET": SECRET, "ENV": "production"})
    client = app.test_client()
    page = text(client.get("/console/sign-in", headers=ENGLISH))
    assert "Paste your token" in page
    assert "Sign in as the operator" not in page
    assert client.get(f"/console/sign-in/{organization}").status_code == 404
    refused = client.post("/console/sign-in", data={"csrf_token": csrf_of(page), "as": "operator"})
    assert refused.status_code == 401  # no minting in production: a token is required
    token = mint_token(SECRET, user_id=CRM_SUPER_ADMIN, organization_id=str(organization))
    page = text(client.get("/console/sign-in"))
    answer = client.post("/console/sign-in", data={"csrf_token": csrf_of(page), "token": token})
    assert answer.status_code == 302
    assert answer.location == f"/console/orgs/{organization}/"
    assert client.get(answer.location).status_code == 200


def test_pages_need_a_sign_in_and_show_nothing_of_another_organization(
    browser: FlaskClient, sign_in: SignIn, organization: UUID, services: Services
) -> None:
    answer = browser.get(f"/console/orgs/{organization}/")
    assert answer.status_code == 302
    assert answer.location.startswith("/console/sign-in?next=")
    other = UUID(
        services.app.register_organization(
            name="Other KK", country="JP", owner_user_id="u-other"
        ).organization_id
    )
    sign_in("u-other", other)
    assert browser.get(f"/console/orgs/{organization}/").status_code == 404
    assert browser.get(f"/console/support/orgs/{organization}").status_code == 403
    assert browser.get("/console/support/").status_code == 403


def test_after_sign_in_only_a_path_of_the_console_is_followed(
    browser: FlaskClient, organization: UUID
) -> None:
    page = text(browser.get("/console/sign-in"))
    answer = browser.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(page), "as": "operator", "next": "//evil.example/"},
    )
    assert answer.location == "/console/support/"


# -- languages ------------------------------------------------------------------------


def test_the_language_follows_accept_language_then_japan_then_the_switch(
    browser: FlaskClient, sign_in: SignIn, services: Services
) -> None:
    assert "Sign in" in text(browser.get("/console/sign-in", headers=ENGLISH))
    japanese = text(browser.get("/console/sign-in", headers={"Accept-Language": "ja,en;q=0.5"}))
    assert "サインイン" in japanese
    assert '<html lang="ja">' in japanese
    us_org = UUID(
        services.app.register_organization(
            name="Acme Inc", country="US", owner_user_id="u-us"
        ).organization_id
    )
    jp_org = UUID(
        services.app.register_organization(
            name="Acme KK", country="JP", owner_user_id="u-jp"
        ).organization_id
    )
    sign_in("u-us", us_org)
    assert "アクセス CRM PLUS" not in text(browser.get(f"/console/orgs/{us_org}/", headers=ENGLISH))
    token = sign_in("u-jp", jp_org)
    home = text(browser.get(f"/console/orgs/{jp_org}/", headers=ENGLISH))
    assert "アクセス CRM PLUS" in home  # an organization in Japan: Japanese by default
    switched = browser.post(
        "/console/language",
        data={"csrf_token": token, "language": "en", "next": f"/console/orgs/{jp_org}/"},
    )
    assert switched.status_code == 302
    cookie = switched.headers["Set-Cookie"]
    assert cookie.startswith("console_lang=en")
    assert "Max-Age=31536000" in cookie
    home = text(browser.get(f"/console/orgs/{jp_org}/", headers={"Accept-Language": "ja"}))
    assert "Access CRM Plus" in home  # the switch wins over everything else


# -- the article's story ------------------------------------------------------------------


def test_the_red_button_refused_names_the_services_lacking_rights_and_their_super_admins(
    browser: FlaskClient, sign_in: SignIn, organization: UUID, services: Services
) -> None:
    token = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    home = text(browser.get(f"/console/orgs/{organization}/"))
    assert "Access CRM Plus" in home
    answer = browser.post(f"/console/orgs/{organization}/trial", data={"csrf_token": token})
    assert answer.status_code == 403
    page = text(answer)
    assert "your existing services would not carry over" in page
    assert re.search(r"<th scope=\"row\">Desk</th><td>u-bob</td>", page)
    assert "Unify the super admin" in page
    assert "admin rights on Desk" in page
    assert services.app.facts(organization).trial is None


def test_the_trial_banner_counts_the_days_and_the_decision_screen_follows_the_end(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    unify_the_super_admin(services.app, organization)
    token = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    started = browser.post(f"/console/orgs/{organization}/trial", data={"csrf_token": token})
    assert started.status_code == 302
    home = text(browser.get(started.location))
    assert "30 days left in your CRM Plus trial." in home
    assert "Use the standalone URL until the upgrade" in home  # Desk, outside the bundle
    assert f"https://crmplus.suite.example/{organization}/crm" in home
    assert f"https://desk.suite.example/{organization}" in home
    clock.advance(timedelta(days=29, hours=1))
    assert "1 day left in your CRM Plus trial." in text(browser.get(started.location))
    clock.advance(timedelta(days=1))
    decision = text(browser.get(started.location))
    assert "Your CRM Plus trial has ended" in decision
    for choice in ("Upgrade now", "Extend the trial", "Cancel the trial"):
        assert choice in decision
    extended = browser.post(
        f"/console/orgs/{organization}/trial/extension", data={"csrf_token": token}
    )
    assert extended.status_code == 302
    assert "15 days left in your CRM Plus trial." in text(browser.get(extended.location))


def test_cancelling_first_lists_the_services_falling_to_free_and_then_records_it(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    unify_the_super_admin(services.app, organization)
    services.app.start_trial(organization, by=CRM_SUPER_ADMIN)
    clock.advance(timedelta(days=31))
    token = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    confirm = text(browser.get(f"/console/orgs/{organization}/trial/cancellation"))
    listed = re.search(r'<ul class="plain downgraded">(.*?)</ul>', confirm, re.S)
    assert listed is not None
    names = re.findall(r"<li>([^<]+)</li>", listed.group(1))
    assert names == ["SalesIQ", "Campaigns", "Projects", "Social", "Survey", "Analytics"]
    assert services.app.facts(organization).cancelled_at is None  # asking recorded nothing
    done = browser.post(
        f"/console/orgs/{organization}/trial/cancellation", data={"csrf_token": token}
    )
    assert done.status_code == 302
    facts = services.app.facts(organization)
    assert [services.catalog.service(c).name for c in facts.downgraded_to_free] == names  # type: ignore[union-attr]


def test_the_order_summary_is_the_quote_with_the_credit_per_service(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(browser.get(f"/console/orgs/{organization}/upgrade"))
    assert 'value="5"' in page  # the seats start at the current licenses, as the rule says
    summary = text(
        browser.get(
            f"/console/orgs/{organization}/upgrade/summary"
            "?billing_period=yearly&seats=10&add_on_storage-10gb=2"
        )
    )
    quote = services.app.quote(
        organization, UpgradeRequest("yearly", 10, (AddOnRequest("storage-10gb", 2),))
    )
    assert f'data-total="{quote.total}"' in summary
    assert f"¥{quote.total:,}" in summary
    for credit in quote.credits:
        assert f"¥{credit.amount_paid:,}" in summary
        assert f"{credit.remaining_days} of {credit.total_days}" in summary
        assert f"¥{credit.amount:,}" in summary
        # A service may hold several periods: each credit row names its own.
        assert f"{credit.period_start} – {credit.period_end}" in summary
    too_few = text(browser.get(f"/console/orgs/{organization}/upgrade/summary?seats=2"))
    assert "at least 5 seats" in too_few


def test_paying_with_a_token_buys_the_bundle_and_shows_the_receipt(
    browser: FlaskClient, sign_in: SignIn, organization: UUID, services: Services
) -> None:
    unify_the_super_admin(services.app, organization)
    token = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    payment = text(
        browser.get(f"/console/orgs/{organization}/upgrade/payment?billing_period=monthly&seats=6")
    )
    total = re.search(r'name="expected_total" value="(\d+)"', payment)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', payment)
    assert total
    assert key
    form = {
        "csrf_token": token,
        "idempotency_key": key.group(1),
        "billing_period": "monthly",
        "seats": "6",
        "expected_total": total.group(1),
        "company_name": "Acme KK",
        "country": "JP",
        "email": "billing@acme.example",
        "payment_token": "tok_chargeDeclined",
    }
    declined = browser.post(f"/console/orgs/{organization}/upgrade", data=form)
    assert declined.status_code == 402
    assert "The card was declined" in text(declined)
    with_card = browser.post(
        f"/console/orgs/{organization}/upgrade",
        data={**form, "company_name": "4242 4242 4242 4242"},
    )
    assert with_card.status_code == 422  # a card number typed anywhere is refused
    form.update(payment_token="tok_visa", idempotency_key=key.group(1) + "-2")
    paid = browser.post(f"/console/orgs/{organization}/upgrade", data=form)
    assert paid.status_code == 302
    receipt = text(browser.get(paid.location))
    assert "Thank you: CRM Plus is active" in receipt
    assert "Visa •••• 4242" in receipt
    assert f"¥{int(total.group(1)):,}" in receipt
    again = browser.post(f"/console/orgs/{organization}/upgrade", data=form)
    assert again.location == paid.location  # Pay pressed twice: the same receipt, one charge
    assert services.app.facts(organization).bundle_state == "active"


# -- support ------------------------------------------------------------------------------


def test_support_sees_the_directory_the_timeline_the_moment_and_the_chain(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    unify_the_super_admin(services.app, organization)
    services.app.start_trial(organization, by=CRM_SUPER_ADMIN)
    clock.advance(timedelta(days=31))
    sign_in()
    browser.set_cookie("console_lang", "en", path="/console")
    expired = text(browser.get("/console/support/?state=trial_expired"))
    assert "Acme KK" in expired
    assert "Acme KK" not in text(browser.get("/console/support/?state=trial"))
    page = text(browser.get(f"/console/support/orgs/{organization}"))
    assert "CRM Plus trial started" in page
    assert "by u-alice" in page
    assert "Time alone changed the access view:" in page  # the trial's end, with no event
    moment = text(browser.get(f"/console/support/orgs/{organization}?as_of=2026-12-01T00:00"))
    assert "after event v5" in moment
    assert "CRM Plus state: No bundle → Trial" in moment
    after_version = text(browser.get(f"/console/support/orgs/{organization}?version=3"))
    assert "after event v3" in after_version
    check = text(browser.get(f"/console/support/orgs/{organization}/verification"))
    assert "The chain holds" in check
    assert "All 5 events decode" in check


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_refusal_page_reads_in_both_languages(
    console_app: Flask, organization: UUID, services: Services, language: str
) -> None:
    client = console_app.test_client()
    client.set_cookie("console_lang", language, path="/console")
    page = text(client.get("/console/sign-in"))
    token = mint_token(SECRET, user_id=DESK_SUPER_ADMIN, organization_id=str(organization))
    assert token
    answer = client.post(
        "/console/sign-in",
        data={
            "csrf_token": csrf_of(page),
            "organization_id": str(organization),
            "user_id": DESK_SUPER_ADMIN,
        },
    )
    csrf = csrf_of(text(client.get(answer.location)))
    refused = text(client.post(f"/console/orgs/{organization}/trial", data={"csrf_token": csrf}))
    expected = {"ja": "特権管理者を統一してください", "en": "Unify the super admin"}[language]
    assert expected in refused
    assert "u-alice" in refused  # CRM's super admin, who must act


def test_the_card_inputs_are_never_submitted_and_without_javascript_a_token_is_picked(
    browser: FlaskClient, sign_in: SignIn, organization: UUID
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    page = text(browser.get(f"/console/orgs/{organization}/upgrade/payment?seats=5"))
    card_inputs = re.findall(r"<input[^>]*data-card-[a-z]+[^>]*>", page)
    assert len(card_inputs) == 3
    assert all(" name=" not in tag for tag in card_inputs)
    noscript = re.search(r"<noscript>(.*?)</noscript>", page, re.S)
    assert noscript is not None
    assert 'name="payment_token"' in noscript.group(1)


def test_assets_carry_no_etag_a_browser_would_send_back_as_digits(browser: FlaskClient) -> None:
    answer = browser.get("/console/static/console.css")
    assert answer.status_code == 200
    assert "ETag" not in answer.headers
    assert "Last-Modified" in answer.headers
    again = browser.get(
        "/console/static/console.css",
        headers={"If-Modified-Since": answer.headers["Last-Modified"]},
    )
    assert again.status_code == 304


# -- every page, walked from the app's own routes ------------------------------------------


def _console_get_rules(app: Flask) -> list[Any]:
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("console.")
            and "GET" in (rule.methods or ())
            and rule.endpoint != "console.static"
        ),
        key=lambda rule: rule.rule,
    )


def test_every_console_page_has_the_csp_local_assets_and_a_csrf_token_in_each_form(
    console_app: Flask,
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
) -> None:
    """Each GET route of the console blueprint (taken from the URL map, so a new page
    is walked without being listed), as its user would see it: the CSP header, no
    inline script, style or handler, every script, stylesheet and image served from
    /console/static/, and the session's CSRF token in every form that posts."""
    receipt = buy_the_bundle(services, organization)
    values = {
        "organization_id": str(organization),
        "checkout_id": str(receipt["checkout_id"]),
        "number": str(receipt["invoice_number"]),
    }
    walked = []
    for support in (False, True):
        csrf = sign_in() if support else sign_in(CRM_SUPER_ADMIN, organization)
        for rule in _console_get_rules(console_app):
            if rule.rule.startswith("/console/support") is not support:
                continue
            path = rule.rule
            for name in rule.arguments:
                path = re.sub(rf"<(?:[a-z]+:)?{name}>", values[name], path)
            answer = browser.get(path, headers=ENGLISH)
            walked.append(rule.endpoint)
            assert answer.status_code < 500, path
            assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
            if answer.mimetype != "text/html" or answer.status_code in (301, 302, 303):
                continue
            html = text(answer)
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
            assert not re.search(r"\son[a-z]+=", html), path
            assert not re.search(r"\sstyle=", html), path
            assert "//" not in "".join(re.findall(r"<(?:script|link|img)[^>]*>", html)), path
            for asset in re.findall(r'<(?:script|link|img)[^>]*(?:src|href)="([^"]+)"', html):
                assert asset.startswith("/console/static/"), (path, asset)
                assert browser.get(asset).status_code == 200, asset
            for form in re.findall(r'<form[^>]*method="post".*?</form>', html, re.S):
                assert f'name="csrf_token" value="{csrf}"' in form, (path, form)
    pages = {"console.home", "console.contract", "console.change_plan", "console.card"}
    pages |= {"console.support_directory", "console.support_organization"}
    assert pages <= set(walked)
    assert len(walked) == len(_console_get_rules(console_app))


def test_the_upgrade_summary_updates_without_javascript(
    browser: FlaskClient, sign_in: SignIn, organization: UUID, services: Services
) -> None:
    """ "Update the summary" (hidden when console.js runs) submits the choices to the
    upgrade page itself, which comes back priced: the same quote, no script needed."""
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(browser.get(f"/console/orgs/{organization}/upgrade"))
    assert re.search(r'formaction="/console/orgs/[^"]+/upgrade"[^>]*js-hidden', page)
    priced = text(
        browser.get(
            f"/console/orgs/{organization}/upgrade"
            "?billing_period=yearly&seats=10&add_on_storage-10gb=2"
        )
    )
    quote = services.app.quote(
        organization, UpgradeRequest("yearly", 10, (AddOnRequest("storage-10gb", 2),))
    )
    assert f'data-total="{quote.total}"' in priced
    assert 'name="seats" type="number" min="1" max="10000" inputmode="numeric" value="10"' in priced


def test_the_chain_check_page_shows_a_tampered_event(
    tmp_path: Path, clock: ManualClock, catalog: Catalog
) -> None:
    """The chain check is ``audit verify`` for one organization: a byte changed in the
    stored event behind the service's back is reported as the broken link it makes."""
    built = build_services(f"sqlite:///{tmp_path}/chain.sqlite3", clock=clock, catalog=catalog)
    try:
        organization = register_the_article_organization(built.app)  # v2: CRM, by u-alice
        client = create_app({"SERVICES": built, "JWT_SECRET": SECRET}).test_client()
        client.set_cookie("console_lang", "en", path="/console")
        page = text(client.get("/console/sign-in"))
        client.post("/console/sign-in", data={"csrf_token": csrf_of(page), "as": "operator"})
        path = f"/console/support/orgs/{organization}/verification"
        assert "The chain holds" in text(client.get(path))
        table = str(built.app.recorder.events_table_name)  # type: ignore[attr-defined]
        assert built.settings.sqlite_path is not None
        with sqlite3.connect(built.settings.sqlite_path) as db:
            [(state,)] = db.execute(
                f"SELECT state FROM {table} WHERE originator_id = ? AND originator_version = 2",
                (organization.hex,),
            ).fetchall()
            assert b"u-alice" in bytes(state)
            db.execute(
                f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = 2",
                (bytes(state).replace(b"u-alice", b"u-alicf"), organization.hex),
            )
        broken = text(client.get(path))
        assert "The chain is broken" in broken
        assert re.search(r"<td>2</td><td><code>chain_broken</code></td>", broken), broken
    finally:
        built.close()
