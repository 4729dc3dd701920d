"""``/v1/organizations/{org}/invoices``: the invoices view (SPEC §11), JSON or PDF.

The organization's own users and the operator may read them; another
organization's token gets 404, like every organization resource.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Response, current_app, jsonify, request
from flask.views import MethodView

from application.bootstrap import Services
from interface import invoice_schemas as s
from interface.invoice_pdf import PDF_MIMETYPE, render_invoice_pdf
from interface.request_guard import current_principal
from interface.routes.blueprint import ApiBlueprint
from interface.routes.documentation import errors

blp = ApiBlueprint(
    "invoices",
    __name__,
    url_prefix="/v1/organizations",
    description="Invoices (適格請求書): one per charge, as JSON or an A4 PDF.",
)

ORG = "/<uuid:organization_id>"


def services() -> Services:
    found: Services = current_app.extensions["suitesub"]
    return found


def _authorized(organization_id: UUID) -> None:
    current_principal().require_organization(organization_id)


@blp.route(f"{ORG}/invoices")
class Invoices(MethodView):
    @blp.arguments(s.InvoicesQuerySchema, location="query")
    @blp.response(200, s.InvoicePageSchema)
    @errors(404, 422, 503)
    def get(self, query: dict[str, Any], organization_id: UUID) -> dict[str, Any]:
        """The organization's invoices, newest first; `next` is the cursor (`after`)."""
        _authorized(organization_id)
        return services().invoices.invoices(
            organization_id,
            after=query["after"],
            limit=query["limit"],
            min_position=query["min_position"],
        )


@blp.route(f"{ORG}/invoices/<string:number>")
class InvoiceDocument(MethodView):
    @blp.arguments(s.InvoiceQuerySchema, location="query")
    @blp.response(200, s.InvoiceSchema)
    @errors(404, 422, 503)
    @blp.doc(
        responses={
            "200": {
                "description": "The invoice as JSON, or with Accept: application/pdf its A4 PDF",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Invoice"}},
                    PDF_MIMETYPE: {"schema": {"type": "string", "format": "binary"}},
                },
            }
        }
    )
    def get(self, query: dict[str, Any], organization_id: UUID, number: str) -> Response:
        """One invoice: JSON, or an A4 PDF with `Accept: application/pdf`."""
        _authorized(organization_id)
        row = services().invoices.invoice(
            organization_id, number, min_position=query["min_position"]
        )
        if wants_pdf():
            return Response(
                render_invoice_pdf(row.invoice),
                mimetype=PDF_MIMETYPE,
                headers={
                    "Content-Disposition": f'inline; filename="{row.number}.pdf"',
                    "Vary": "Accept",
                },
            )
        answer = jsonify(s.InvoiceSchema().dump(row.to_dict()))
        answer.headers["Vary"] = "Accept"
        return answer


def wants_pdf() -> bool:
    """``Accept`` prefers ``application/pdf`` to JSON (JSON when both are equal or absent)."""
    accept = request.accept_mimetypes
    return accept.quality(PDF_MIMETYPE) > accept.quality("application/json")
