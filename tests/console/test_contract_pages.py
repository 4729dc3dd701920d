"""Page 5 (SPEC §13, §11): the contract after the upgrade, and what can be done with it."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from uuid import UUID

import pytest
from babel.dates import format_datetime
from flask.testing import FlaskClient
from pypdf import PdfReader

from application.bootstrap import Services
from application.upgrade import PurchaseRequest
from domain.clock import ManualClock
from domain.contract_change import WantedChange
from domain.quote import UpgradeRequest
from interface.console.security import CONTENT_SECURITY_POLICY
from interface.invoice_pdf import render_invoice_pdf
from tests.console.conftest import SignIn
from tests.console.story import (
    CRM_SUPER_ADMIN,
    DESK_SUPER_ADMIN,
    buy_the_bundle,
    csrf_of,
    unify_the_super_admin,
)

ENGLISH = {"Accept-Language": "en"}


def text(answer: object) -> str:
    return answer.get_data(as_text=True)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def bought(services: Services, organization: UUID) -> dict[str, object]:
    return buy_the_bundle(services, organization)


def event_types(services: Services, organization: UUID) -> list[str]:
    page = services.app.organization_events(organization, after=0, limit=500)
    return [event["type"] for event in page["events"]]


def test_the_contract_page_shows_the_terms_of_the_access_views_contract_block(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    home = text(browser.get(f"/console/orgs/{organization}/"))
    assert f'href="/console/orgs/{organization}/contract"' in home
    assert "Renews on Nov 26, 2027" in home
    page = text(browser.get(f"/console/orgs/{organization}/contract"))
    contract = services.read_model.access(organization)["bundle"]["contract"]
    assert contract["current_period_end"] == "2027-11-26T09:00:00+00:00"
    assert "Renews on" in page
    assert '<dd class="renewal">Nov 26, 2027, 9:00:00' in page  # the period's end
    assert '<dd class="seats">10</dd>' in page
    assert "Storage, 10 GB × 2" in page
    assert f'<dd class="credit-balance">¥{contract["credit_balance"]:,}</dd>' in page
    assert "Visa •••• 4242" in page
    receipt = text(browser.get(f"/console/orgs/{organization}/receipts/{bought['checkout_id']}"))
    assert f'href="/console/orgs/{organization}/contract"' in receipt


def test_cancelling_at_the_period_end_and_undoing_it_records_both_events(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert "There is no refund for the running period" in page
    cancelled = browser.post(
        f"/console/orgs/{organization}/contract/cancellation", data={"csrf_token": csrf}
    )
    assert cancelled.status_code == 302
    page = text(browser.get(cancelled.location))
    assert "CRM Plus will end at the end of the current period." in page
    assert "Cancellation scheduled" in page
    assert "Ends on" in page
    contract = services.read_model.access(organization)["bundle"]["contract"]
    assert contract["cancel_at_period_end"] is True
    assert event_types(services, organization)[-1] == "BundleCancellationScheduled"

    undone = browser.post(
        f"/console/orgs/{organization}/contract/cancellation/withdrawal",
        data={"csrf_token": csrf_of(page)},
    )
    page = text(browser.get(undone.location))
    assert "The cancellation is withdrawn" in page
    assert "Renews on" in page
    assert (
        services.read_model.access(organization)["bundle"]["contract"]["cancel_at_period_end"]
        is False
    )
    assert event_types(services, organization)[-1] == "BundleCancellationWithdrawn"


def test_a_refused_cancellation_is_explained_and_changes_nothing(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.post(f"/console/orgs/{organization}/contract/cancellation", data={"csrf_token": csrf})
    version = services.app.get_organization(organization).version
    again = browser.post(
        f"/console/orgs/{organization}/contract/cancellation",
        data={"csrf_token": csrf},
        headers=ENGLISH,
    )
    assert again.status_code == 409
    assert "already set to end" in text(again)
    assert services.app.get_organization(organization).version == version


def test_before_the_upgrade_the_contract_page_sends_home(
    browser: FlaskClient, sign_in: SignIn, organization: UUID
) -> None:
    sign_in(DESK_SUPER_ADMIN, organization)
    answer = browser.get(f"/console/orgs/{organization}/contract")
    assert answer.status_code == 302
    assert answer.location == f"/console/orgs/{organization}/"


# -- invoices ---------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_contract_and_invoices_pages_list_the_upgrades_invoice_with_its_pdf(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    number = str(bought["invoice_number"])
    pdf_path = f"/console/orgs/{organization}/invoices/{number}/pdf"
    contract = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert f'href="{pdf_path}"' in contract
    assert f'href="/console/orgs/{organization}/invoices"' in contract
    listed = text(browser.get(f"/console/orgs/{organization}/invoices"))
    row = re.search(rf"<tr>\s*<th scope=\"row\"><code>{number}</code>.*?</tr>", listed, re.S)
    assert row is not None, listed
    assert "Upgrade to CRM Plus" in row.group(0)
    assert f"¥{bought['total']:,}" in row.group(0)
    assert "Visa •••• 4242" in row.group(0)
    assert f'href="{pdf_path}"' in row.group(0)

    pdf = browser.get(pdf_path)
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="{number}.pdf"'
    recorded = services.invoices.invoice(organization, number).invoice
    assert pdf.data == render_invoice_pdf(recorded)  # the recorded invoice, not a recomputation
    assert number in pdf_text(pdf.data)
    assert f"¥{bought['total']:,}" in pdf_text(pdf.data)


def test_the_receipt_links_to_its_invoice(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    # The link waits for the view to hold the event that issued it (read-your-writes).
    issued_at = services.invoices.invoice(organization, str(bought["invoice_number"])).position
    sign_in(CRM_SUPER_ADMIN, organization)
    receipt = text(browser.get(f"/console/orgs/{organization}/receipts/{bought['checkout_id']}"))
    link = re.search(r'<dd class="invoice-number"><a href="([^"]+)"', receipt)
    assert link is not None, receipt
    path = link.group(1).replace("&amp;", "&")
    assert path == (
        f"/console/orgs/{organization}/invoices/{bought['invoice_number']}/pdf"
        f"?min_position={issued_at}"
    )
    pdf = browser.get(path)
    assert pdf.status_code == 200
    assert str(bought["invoice_number"]) in pdf_text(pdf.data)


def test_an_unknown_invoice_or_another_organizations_is_404(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    missing = browser.get(f"/console/orgs/{organization}/invoices/SS-2026-999999/pdf")
    assert missing.status_code == 404
    assert "There is no such invoice" in text(missing)
    other = services.app.register_organization(name="Globex", country="US", owner_user_id="u-gil")
    for path in ("invoices", f"invoices/{bought['invoice_number']}/pdf"):
        answer = browser.get(f"/console/orgs/{other.organization_id}/{path}")
        assert answer.status_code == 404


def test_support_lists_the_organizations_invoices_with_their_pdfs(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    number = str(bought["invoice_number"])
    sign_in(CRM_SUPER_ADMIN, organization)
    assert browser.get(f"/console/support/orgs/{organization}/invoices").status_code == 403
    sign_in()
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(browser.get(f"/console/support/orgs/{organization}"))
    assert f'href="/console/support/orgs/{organization}/invoices"' in page
    listed = text(browser.get(f"/console/support/orgs/{organization}/invoices"))
    pdf_path = f"/console/support/orgs/{organization}/invoices/{number}/pdf"
    assert f'href="{pdf_path}"' in listed
    assert f"¥{bought['total']:,}" in listed
    pdf = browser.get(pdf_path)
    assert pdf.status_code == 200
    assert pdf.data == render_invoice_pdf(services.invoices.invoice(organization, number).invoice)


# -- the card on file -------------------------------------------------------------------


def test_updating_the_card_puts_the_tokens_card_on_file(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    contract = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert f'href="/console/orgs/{organization}/contract/card"' in contract
    page = text(browser.get(f"/console/orgs/{organization}/contract/card"))
    assert "Visa •••• 4242" in page
    card_inputs = re.findall(r"<input[^>]*data-card-[a-z]+[^>]*>", page)
    assert len(card_inputs) == 3
    assert all(" name=" not in tag for tag in card_inputs)  # only the token is ever sent
    assert 'name="payment_token"' in page  # the <noscript> choice without JavaScript
    saved = browser.post(
        f"/console/orgs/{organization}/contract/card",
        data={"csrf_token": csrf, "payment_token": "tok_mastercard"},
    )
    assert saved.status_code == 302
    assert saved.location.startswith(f"/console/orgs/{organization}/contract?min_position=")
    page = text(browser.get(saved.location))
    assert "The card on file is now Mastercard •••• 4444." in page
    assert '<dd class="card">Mastercard •••• 4444</dd>' in page
    assert event_types(services, organization)[-1] == "PaymentMethodChanged"
    terms = services.read_model.access(organization)["bundle"]["contract"]
    assert terms["payment_method"] == {"brand": "mastercard", "last4": "4444"}


def test_a_card_the_gateway_refuses_is_explained_and_changes_nothing(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    version = services.app.get_organization(organization).version
    declined = browser.post(
        f"/console/orgs/{organization}/contract/card",
        data={"csrf_token": csrf, "payment_token": "tok_chargeDeclined"},
    )
    assert declined.status_code == 402
    assert "The card was declined" in text(declined)
    assert "The card on file has not changed." in text(declined)
    missing = browser.post(f"/console/orgs/{organization}/contract/card", data={"csrf_token": csrf})
    assert missing.status_code == 422
    forged = browser.post(
        f"/console/orgs/{organization}/contract/card", data={"payment_token": "tok_visa"}
    )
    assert forged.status_code == 400  # no CSRF token: refused before the view runs
    assert services.app.get_organization(organization).version == version


def test_a_new_card_while_past_due_pays_the_renewal_at_once(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    buy_the_bundle(services, organization, token="tok_visa_renewalDeclined")
    clock.advance(timedelta(days=366))  # past the yearly period's end
    assert services.renewals.sweep().failed == [str(organization)]
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    contract = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert "The renewal payment failed" in contract
    assert f'href="/console/orgs/{organization}/contract/card"' in contract
    # The unpaid period's end is past: it is named as the renewal owed, not "Renews on".
    assert "Renewal unpaid since" in contract
    assert "Renews on" not in contract
    home = text(browser.get(f"/console/orgs/{organization}/"))
    assert re.search(r"The renewal due on Nov 26, 2027, [^<]+ UTC is unpaid\.", home)
    assert "Renews on" not in home
    page = text(browser.get(f"/console/orgs/{organization}/contract/card"))
    assert "Saving a new card charges the renewal to it at once." in page
    assert "Save the card and pay now" in page

    again = browser.post(
        f"/console/orgs/{organization}/contract/card",
        data={"csrf_token": csrf, "payment_token": "tok_visa_renewalDeclined"},
    )
    assert again.location.startswith(f"/console/orgs/{organization}/contract/card")
    page = text(browser.get(again.location))
    assert "The renewal could not be paid with the new card either" in page
    assert services.app.facts(organization).bundle_state == "past_due"

    paid = browser.post(
        f"/console/orgs/{organization}/contract/card",
        data={"csrf_token": csrf_of(page), "payment_token": "tok_visa"},
    )
    page = text(browser.get(paid.location))
    assert "The renewal was paid with the new card" in page
    assert services.app.facts(organization).bundle_state == "active"
    assert "The renewal payment failed" not in page
    assert '<dd class="renewal">Nov 26, 2028' in page  # the renewed period's end
    assert "Renews on" in page
    assert "Renewal unpaid since" not in page
    assert "Renewal" in page  # the renewal's invoice, listed with the upgrade's
    # Each new card is put on file and charged at once: declined, then paid.
    assert event_types(services, organization)[-6:] == [
        "PaymentMethodChanged",
        "RenewalChargeStarted",
        "RenewalPaymentFailed",
        "PaymentMethodChanged",
        "RenewalChargeStarted",
        "BundleRenewed",
    ]


# -- changing the plan ------------------------------------------------------------------

MORE_SEATS = {"billing_period": "yearly", "seats": "12", "add_on_storage-10gb": "2"}


def quoted_total(html: str) -> int:
    found = re.search(r'data-change-total="(\d+)"', html)
    assert found, "the page shows no quote"
    return int(found.group(1))


def confirm_form(html: str) -> dict[str, str]:
    """The Confirm form's fields, as the browser would post them."""
    form = re.search(r'<form[^>]*id="confirm-change-form".*?</form>', html, re.S)
    assert form, "the page has no Confirm form"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(0)))


def test_more_seats_are_quoted_pro_rata_and_confirming_charges_the_quote_once(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
    bought: dict[str, object],
) -> None:
    clock.advance(timedelta(days=40))
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    contract = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert f'href="/console/orgs/{organization}/contract/change"' in contract
    page = text(browser.get(f"/console/orgs/{organization}/contract/change"))
    assert "These are your current terms" in page  # the form starts at the contract's terms
    assert 'name="seats" type="number" min="1" max="10000" inputmode="numeric" value="10"' in page

    # Without JavaScript: "Show the quote" posts the form and the page shows the price.
    shown = browser.post(
        f"/console/orgs/{organization}/contract/change/quote",
        data={"csrf_token": csrf, **MORE_SEATS},
    )
    assert shown.status_code == 200
    page = text(shown)
    quote = services.plan_changes.quote(organization, WantedChange(seats=12))
    assert quoted_total(page) == quote["total"]
    [line] = quote["lines"]
    assert f"CRM Plus, 2 more users for {line['days']} of {line['period_days']} days" in page
    assert f"Confirm and pay ¥{quote['total']:,}" in page
    fields = confirm_form(page)
    assert fields["expected_total"] == str(quote["total"])
    assert fields["seats"] == "12"

    done = browser.post(f"/console/orgs/{organization}/contract/change", data=fields)
    assert done.status_code == 302
    page = text(browser.get(done.location))
    number = services.invoices.invoices(organization)["invoices"][0]["number"]
    assert (
        f"The plan has changed: ¥{quote['total']:,} charged to Visa •••• 4242 "
        f"(invoice {number})." in page
    )
    assert '<dd class="seats">12</dd>' in page
    assert "Change of the plan" in page  # its invoice, newest first
    # Confirm pressed twice (the same page's key): answered from the log, charged once.
    again = browser.post(f"/console/orgs/{organization}/contract/change", data=fields)
    assert again.status_code == 302
    assert event_types(services, organization).count("BundleChanged") == 1
    assert services.read_model.access(organization)["bundle"]["contract"]["seats"] == 12


def test_a_changed_price_is_refused_with_the_new_quote_and_nothing_is_charged(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
    bought: dict[str, object],
) -> None:
    clock.advance(timedelta(days=40))
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(
        browser.post(
            f"/console/orgs/{organization}/contract/change/quote",
            data={"csrf_token": csrf, **MORE_SEATS},
        )
    )
    fields = confirm_form(page)
    clock.advance(timedelta(days=30))  # a month later the rest of the period is shorter
    version = services.app.get_organization(organization).version
    refused = browser.post(f"/console/orgs/{organization}/contract/change", data=fields)
    assert refused.status_code == 409  # the change page with the new quote, not an error page
    page = text(refused)
    assert "The price changed" in page
    assert "Nothing was charged." in page
    fresh = services.plan_changes.quote(organization, WantedChange(seats=12))
    assert fresh["total"] < int(fields["expected_total"])
    assert quoted_total(page) == fresh["total"]
    assert services.app.get_organization(organization).version == version


def test_fewer_seats_wait_for_the_renewal_and_charge_nothing(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    fewer = {
        "csrf_token": csrf,
        "billing_period": "yearly",
        "seats": "8",
        "add_on_storage-10gb": "2",
    }
    page = text(browser.post(f"/console/orgs/{organization}/contract/change/quote", data=fewer))
    assert "Users: 10 → 8" in page
    assert "at the renewal" in page
    assert "Nothing is charged now" in page
    assert quoted_total(page) == 0
    assert "Confirm the change" in page
    invoices_before = services.invoices.invoices(organization)["invoices"]
    done = browser.post(f"/console/orgs/{organization}/contract/change", data=confirm_form(page))
    page = text(browser.get(done.location))
    assert "The change takes effect at the renewal on Nov 26, 2027" in page
    assert "At the renewal:" in page
    assert "8 users" in page
    assert '<dd class="seats">10</dd>' in page  # still 10 until then
    assert event_types(services, organization)[-1] == "BundleChangeScheduled"
    assert services.invoices.invoices(organization)["invoices"] == invoices_before


def test_the_live_quote_is_the_same_fragment_and_needs_the_csrf_token(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    path = f"/console/orgs/{organization}/contract/change/summary"
    fragment = text(browser.post(path, data={"csrf_token": csrf, **MORE_SEATS}))
    assert '<div class="order-summary" id="change-summary"' in fragment
    assert "<html" not in fragment
    quote = services.plan_changes.quote(organization, WantedChange(seats=12))
    assert quoted_total(fragment) == quote["total"]
    assert browser.post(path, data=MORE_SEATS).status_code == 400
    invalid = text(browser.post(path, data={"csrf_token": csrf, **MORE_SEATS, "seats": "0"}))
    assert "data-change-total" not in invalid
    assert "seats" in invalid


def test_while_past_due_the_change_page_sends_to_the_card(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    buy_the_bundle(services, organization, token="tok_visa_renewalDeclined")
    clock.advance(timedelta(days=366))
    assert services.renewals.sweep().failed == [str(organization)]
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    contract = text(browser.get(f"/console/orgs/{organization}/contract"))
    assert f'href="/console/orgs/{organization}/contract/change"' not in contract
    page = text(
        browser.post(
            f"/console/orgs/{organization}/contract/change/quote",
            data={"csrf_token": csrf, **MORE_SEATS},
        )
    )
    assert "data-change-total" not in page
    assert "pay the renewal first" in page
    assert f'href="/console/orgs/{organization}/contract/card"' in page


def test_the_contract_pages_have_the_csp_no_inline_code_and_csrf_on_every_form(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    org = f"/console/orgs/{organization}"
    answers = [
        browser.get(f"{org}/contract"),
        browser.get(f"{org}/contract/card"),
        browser.get(f"{org}/contract/change"),
        browser.post(f"{org}/contract/change/quote", data={"csrf_token": csrf, **MORE_SEATS}),
        browser.get(f"{org}/invoices"),
        browser.get(f"{org}/receipts/{bought['checkout_id']}"),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        html = text(answer)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert not re.search(r"\son[a-z]+=", html)
        assert not re.search(r"\sstyle=", html)
        for form in re.findall(r'<form[^>]*method="post".*?</form>', html, re.S):
            assert f'name="csrf_token" value="{csrf}"' in form, form


def test_monthly_to_yearly_is_quoted_as_a_new_period_with_the_unused_days_credited(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    unify_the_super_admin(services.app, organization)
    services.app.start_trial(organization, by=CRM_SUPER_ADMIN)
    monthly = UpgradeRequest(billing_period="monthly", seats=10, add_ons=())
    services.checkouts.purchase(
        organization,
        by=CRM_SUPER_ADMIN,
        purchase=PurchaseRequest(
            request=monthly,
            billing_contact={"company_name": "Acme KK", "country": "JP", "email": "b@acme.example"},
            expected_total=services.app.quote(organization, monthly).total,
            payment_token="tok_visa",
        ),
        idempotency_key="monthly",
    )
    clock.advance(timedelta(days=10))
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(
        browser.post(
            f"/console/orgs/{organization}/contract/change/quote",
            data={"csrf_token": csrf, "billing_period": "yearly", "seats": "10"},
        )
    )
    quote = services.plan_changes.quote(organization, WantedChange(billing_period="yearly"))
    unused = quote["unused_period_credit"]
    assert quote["new_period"] is True
    assert "Billing period: Monthly → Yearly" in page
    assert "CRM Plus, 10 users × 12 months" in page
    assert (
        f"Credit for the unused {unused['remaining_days']} of {unused['total_days']} days "
        "of the current period" in page
    )
    assert f"-¥{quote['period_credit_applied']:,}" in page
    assert "A new period starts now" in page
    assert quoted_total(page) == quote["total"]


def test_the_support_timeline_tells_the_contracts_events_in_plain_words(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
    bought: dict[str, object],
) -> None:
    services.app.cancel_contract(organization, by=CRM_SUPER_ADMIN)
    services.app.withdraw_contract_cancellation(organization, by=CRM_SUPER_ADMIN)
    clock.advance(timedelta(days=40))
    quote = services.plan_changes.quote(organization, WantedChange(seats=12))
    services.plan_changes.change(
        organization,
        by=CRM_SUPER_ADMIN,
        wanted=WantedChange(seats=12),
        expected_total=quote["total"],
        idempotency_key="more-seats",
    )
    services.renewals.change_payment_method(
        organization, by=CRM_SUPER_ADMIN, payment_token="tok_mastercard"
    )
    number = services.invoices.invoices(organization)["invoices"][0]["number"]
    sign_in()
    browser.set_cookie("console_lang", "en", path="/console")
    page = text(browser.get(f"/console/support/orgs/{organization}"))
    for sentence in (
        "Cancellation scheduled: CRM Plus ends Nov 26, 2027",
        "Cancellation withdrawn: CRM Plus renews as before.",
        f"Plan change charge started for ¥{quote['total']:,}.",
        f"Plan changed: 12 seats, Yearly, Storage, 10 GB × 2; ¥{quote['total']:,} charged "
        f"(invoice {number}).",
        "Card on file changed to mastercard ending 4444.",
    ):
        assert sentence in page, sentence


# -- what Confirm says when the change is refused -----------------------------------------

REFUSED_WORDS = {
    "en": {
        "no_change": "These are already the contract's terms",
        "no_change_why": "are already your contract's terms, now and at the renewal",
        "no_change_next": "change the users, add-ons or billing period below",
        "past_due": "A renewal payment is past due: pay the renewal first",
        "past_due_why": "the renewal payment has been past due since {since} UTC, and",
        "pay_now": "Update the card and pay now",
        "declined": "The card was declined",
        "declined_why": "could not be charged to the card on file (Visa •••• 0341)",
        "declined_next": "Update the card, then come back here and confirm the change again.",
        "ending": "The contract is set to end: keep CRM Plus before starting a yearly period",
        "ending_next": "Undo the cancellation on the contract page first",
    },
    "ja": {
        "no_change": "すでに現在のご契約内容です",
        "no_change_why": "現在も更新時も、すでにご契約の内容です",
        "no_change_next": "下のユーザー数・アドオン・請求期間を変えてください",
        "past_due": "更新料金のお支払いが遅延しています。先に更新料金をお支払いください",
        "past_due_why": "{since} UTC から更新料金のお支払いが遅延しており",
        "pay_now": "カードを変更して今すぐ支払う",
        "declined": "カードが拒否されました",
        "declined_why": "登録済みのカード(Visa •••• 0341)に変更料金を請求できませんでした",
        "declined_next": "カードを変更してから、ここに戻って変更をもう一度確定してください。",
        "ending": "契約は終了予定です。年間期間を始める前に、CRM Plus の継続",
        "ending_next": "先に契約ページで解約を取り消してから",
    },
}


def refusal_panel(html: str) -> str:
    """The panel Confirm's refusal is explained in (role=alert), its text unescaped."""
    panel = re.search(r'<div class="panel refusal change-refusal".*?</div>', html, re.S)
    assert panel, "the page explains no refusal"
    return unescape(re.sub(r"\s+", " ", panel.group(0)))


@pytest.mark.parametrize("language", ["ja", "en"])
def test_confirming_the_contracts_own_terms_says_nothing_changes_and_how_to_change(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
    language: str,
) -> None:
    words = REFUSED_WORDS[language]
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", language, path="/console")
    version = services.app.get_organization(organization).version
    same = {
        "csrf_token": csrf,
        "idempotency_key": "console-same-terms",
        "billing_period": "yearly",
        "seats": "10",
        "add_on_storage-10gb": "2",
        "expected_total": "0",
    }
    answer = browser.post(f"/console/orgs/{organization}/contract/change", data=same)
    assert answer.status_code == 422  # the change page, explained, not an error page
    panel = refusal_panel(text(answer))
    assert words["no_change"] in panel
    assert words["no_change_why"] in panel
    assert words["no_change_next"] in panel
    assert 'id="change-form"' in text(answer)  # the way forward: the form, at these terms
    assert services.app.get_organization(organization).version == version


@pytest.mark.parametrize("language", ["ja", "en"])
def test_confirming_a_change_once_the_renewal_is_past_due_sends_to_the_card(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
    language: str,
) -> None:
    words = REFUSED_WORDS[language]
    buy_the_bundle(services, organization, token="tok_visa_renewalDeclined")
    clock.advance(timedelta(days=40))
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", language, path="/console")
    quoted = browser.post(
        f"/console/orgs/{organization}/contract/change/quote",
        data={"csrf_token": csrf, **MORE_SEATS},
    )
    fields = confirm_form(text(quoted))  # the quote was shown while the contract was active
    clock.advance(timedelta(days=326))  # past the period's end: the renewal is declined
    assert services.renewals.sweep().failed == [str(organization)]
    version = services.app.get_organization(organization).version
    answer = browser.post(f"/console/orgs/{organization}/contract/change", data=fields)
    assert answer.status_code == 409
    panel = refusal_panel(text(answer))
    assert words["past_due"] in panel
    since = services.read_model.access(organization)["bundle"]["contract"]["past_due_since"]
    shown = format_datetime(datetime.fromisoformat(since), "medium", tzinfo=UTC, locale=language)
    assert words["past_due_why"].format(since=re.sub(r"\s", " ", shown)) in panel
    assert f'href="/console/orgs/{organization}/contract/card"' in panel
    assert words["pay_now"] in panel
    assert text(answer).count('role="alert"') == 1  # said once, not again in the summary
    assert services.app.get_organization(organization).version == version


@pytest.mark.parametrize("language", ["ja", "en"])
def test_a_change_the_card_on_file_declines_is_explained_with_the_way_to_a_new_card(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
    language: str,
) -> None:
    words = REFUSED_WORDS[language]
    # The sandbox's renewal-declined card pays the upgrade and declines every later charge.
    buy_the_bundle(services, organization, token="tok_visa_renewalDeclined")
    clock.advance(timedelta(days=40))
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", language, path="/console")
    quoted = browser.post(
        f"/console/orgs/{organization}/contract/change/quote",
        data={"csrf_token": csrf, **MORE_SEATS},
    )
    answer = browser.post(
        f"/console/orgs/{organization}/contract/change", data=confirm_form(text(quoted))
    )
    assert answer.status_code == 402
    panel = refusal_panel(text(answer))
    assert words["declined"] in panel
    assert words["declined_why"] in panel
    assert words["declined_next"] in panel
    assert f'href="/console/orgs/{organization}/contract/card"' in panel
    assert event_types(services, organization)[-1] == "ChangeChargeFailed"
    assert services.read_model.access(organization)["bundle"]["contract"]["seats"] == 10


@pytest.mark.parametrize("language", ["ja", "en"])
def test_monthly_to_yearly_while_set_to_cancel_says_to_undo_the_cancellation_first(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
    language: str,
) -> None:
    words = REFUSED_WORDS[language]
    unify_the_super_admin(services.app, organization)
    services.app.start_trial(organization, by=CRM_SUPER_ADMIN)
    monthly = UpgradeRequest(billing_period="monthly", seats=10, add_ons=())
    services.checkouts.purchase(
        organization,
        by=CRM_SUPER_ADMIN,
        purchase=PurchaseRequest(
            request=monthly,
            billing_contact={"company_name": "Acme KK", "country": "JP", "email": "b@acme.example"},
            expected_total=services.app.quote(organization, monthly).total,
            payment_token="tok_visa",
        ),
        idempotency_key="monthly",
    )
    clock.advance(timedelta(days=10))
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", language, path="/console")
    quoted = browser.post(
        f"/console/orgs/{organization}/contract/change/quote",
        data={"csrf_token": csrf, "billing_period": "yearly", "seats": "10"},
    )
    services.app.cancel_contract(organization, by=CRM_SUPER_ADMIN)  # in another tab
    version = services.app.get_organization(organization).version
    answer = browser.post(
        f"/console/orgs/{organization}/contract/change", data=confirm_form(text(quoted))
    )
    assert answer.status_code == 409
    panel = refusal_panel(text(answer))
    assert words["ending"] in panel
    assert words["ending_next"] in panel
    assert f'href="/console/orgs/{organization}/contract"' in panel
    assert services.app.get_organization(organization).version == version


def test_a_tampered_confirm_form_is_explained_and_charges_nothing(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    bought: dict[str, object],
) -> None:
    csrf = sign_in(CRM_SUPER_ADMIN, organization)
    browser.set_cookie("console_lang", "en", path="/console")
    version = services.app.get_organization(organization).version
    answer = browser.post(
        f"/console/orgs/{organization}/contract/change",
        data={"csrf_token": csrf, **MORE_SEATS, "seats": "0", "expected_total": "1"},
    )
    assert answer.status_code == 422
    panel = refusal_panel(text(answer))
    assert "Some fields need correcting" in panel
    assert "Correct the users and add-ons below" in panel
    assert "seats" in panel
    assert services.app.get_organization(organization).version == version


def test_the_support_directory_files_a_contract_under_its_state_as_payments_come_and_go(
    browser: FlaskClient,
    sign_in: SignIn,
    organization: UUID,
    services: Services,
    clock: ManualClock,
) -> None:
    buy_the_bundle(services, organization, token="tok_visa_renewalDeclined")
    sign_in()
    browser.set_cookie("console_lang", "en", path="/console")

    def listed_under(state: str) -> bool:
        return "Acme KK" in text(browser.get(f"/console/support/?state={state}"))

    assert listed_under("active")
    clock.advance(timedelta(days=366))
    assert services.renewals.sweep().failed == [str(organization)]
    assert listed_under("past_due")
    assert not listed_under("active")
    assert "Payment past due" in text(browser.get("/console/support/"))
    services.renewals.change_payment_method(
        organization, by=CRM_SUPER_ADMIN, payment_token="tok_visa"
    )
    assert listed_under("active")
    assert not listed_under("past_due")
    services.app.cancel_contract(organization, by=CRM_SUPER_ADMIN)
    clock.advance(timedelta(days=366))
    services.renewals.sweep()
    assert listed_under("ended")
    assert not listed_under("active")
