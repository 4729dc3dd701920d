"""Invoices (SPEC §13 item 5, §11): the list and the PDF, for the organization's
administrators and, on the support pages, for the operator.

The list is the invoices view's reader (``Services.invoices``, what
``GET .../invoices`` answers, newest first with the same ``after`` cursor) and
the PDF is ``interface.invoice_pdf.render_invoice_pdf`` of the invoice as the
charging event recorded it, as ``GET .../invoices/{number}`` with
``Accept: application/pdf`` answers. Nothing is recomputed here.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Response, render_template, request
from flask.typing import ResponseReturnValue

from interface.console.blueprint import console, services
from interface.console.pages.admin import ORG, _organization_page
from interface.console.signed_in import operator, organization_user
from interface.invoice_pdf import PDF_MIMETYPE, render_invoice_pdf

INVOICES_PAGE = 20


def min_position() -> int | None:
    """Read-your-writes: a link made right after a charge names the charge's log
    position, so the view is waited for (as the API's ``min_position``)."""
    text = request.args.get("min_position", "").strip()
    return int(text) if text.isdigit() else None


def invoice_page(organization_id: UUID, *, limit: int = INVOICES_PAGE) -> dict[str, Any]:
    """A page of the organization's invoices, newest first (``after``: the cursor)."""
    return services().invoices.invoices(
        organization_id,
        after=request.args.get("after") or None,
        limit=limit,
        min_position=min_position(),
    )


def invoice_pdf(organization_id: UUID, number: str) -> Response:
    """The recorded invoice as its A4 PDF, downloaded as ``{number}.pdf``."""
    row = services().invoices.invoice(organization_id, number, min_position=min_position())
    return Response(
        render_invoice_pdf(row.invoice),
        mimetype=PDF_MIMETYPE,
        headers={"Content-Disposition": f'attachment; filename="{row.number}.pdf"'},
    )


@console.get(f"{ORG}/invoices")
def invoices(organization_id: UUID) -> ResponseReturnValue:
    """Every invoice of the organization (upgrade, renewals, changes), with its PDF."""
    organization_user(organization_id)
    return _organization_page(
        "console/invoices.html", organization_id, page=invoice_page(organization_id)
    )


@console.get(f"{ORG}/invoices/<string:number>/pdf")
def invoice_download(organization_id: UUID, number: str) -> ResponseReturnValue:
    organization_user(organization_id)
    return invoice_pdf(organization_id, number)


@console.get("/support/orgs/<uuid:organization_id>/invoices")
def support_invoices(organization_id: UUID) -> ResponseReturnValue:
    """The organization's invoices, for the operator (the same reader)."""
    operator()
    return render_template(
        "console/support_invoices.html",
        organization_id=organization_id,
        facts=services().app.facts(organization_id),
        page=invoice_page(organization_id),
    )


@console.get("/support/orgs/<uuid:organization_id>/invoices/<string:number>/pdf")
def support_invoice_download(organization_id: UUID, number: str) -> ResponseReturnValue:
    operator()
    return invoice_pdf(organization_id, number)
