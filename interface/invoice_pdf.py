"""An invoice as an A4 PDF (SPEC §11): Japanese and English labels, amounts as ``¥1,234``.

Drawn with reportlab's built-in Japanese CID fonts (HeiseiKakuGo-W5 for
headings and figures, HeiseiMin-W3 for text): nothing is downloaded or
embedded, and every PDF viewer with Japanese support draws them. The PDF is
rendered from the invoice *as recorded* (``Invoice.to_dict()``): nothing is
recomputed, so the document says exactly what the event says. Rendering is
invariant (no creation date, no random id), so the same invoice always gives
the same bytes, on any day.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from domain.invoice import NO_CHARGE, format_amount

GOTHIC = "HeiseiKakuGo-W5"
MINCHO = "HeiseiMin-W3"
PDF_MIMETYPE = "application/pdf"

#: Every label, Japanese first: the qualified invoice's terms, then English.
LABELS = {
    "title": "適格請求書 / Invoice",
    "number": "請求書番号 / Invoice No.",
    "issued_at": "発行日 / Issued",
    "issuer": "発行者 / Issuer",
    "registration": "登録番号 / Registration No.",
    "bill_to": "請求先 / Bill to",
    "period": "対象期間 / Service period",
    "description": "品目 / Description",
    "quantity": "数量 / Qty",
    "unit_price": "単価 / Unit price",
    "term": "期間 / Term",
    "tax_rate": "税率 / Tax",
    "amount": "金額 / Amount",
    "credits": "値引・充当 / Credits",
    "subtotal": "小計 / Subtotal",
    "credit": "値引・充当額 / Credit",
    "taxable": "{rate}%対象 / Taxable at {rate}%",
    "tax": "消費税（{rate}%） / Consumption tax ({rate}%)",
    "total": "合計（税込） / Total (tax included)",
    "payment": "お支払い / Payment",
    "no_charge": "無償 / no charge",
    "months": "{n}か月 / {n} mo.",
    "days": "{n}日 / {n} days",
    "kind": {
        "upgrade": "アップグレード / Upgrade",
        "renewal": "更新 / Renewal",
        "change": "プラン変更 / Plan change",
    },
}

_fonts_registered = False


def _register_fonts() -> None:
    global _fonts_registered  # noqa: PLW0603 - registered once per process
    if not _fonts_registered:
        pdfmetrics.registerFont(UnicodeCIDFont(GOTHIC))
        pdfmetrics.registerFont(UnicodeCIDFont(MINCHO))
        _fonts_registered = True


def _style(name: str, *, font: str = MINCHO, size: float = 9, **kwargs: Any) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.35, **kwargs)


#: Latin text is set in Helvetica (the CID fonts' Latin glyphs are spaced for
#: Japanese text); the Japanese in the CID font of the style.
_LATIN = {MINCHO: "Helvetica", GOTHIC: "Helvetica-Bold"}
_LATIN_RUN = re.compile("([\u0020-\u00ff]+)")


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of *text*, escaped (a billing contact's name is the customer's text)."""
    latin = _LATIN[style.fontName]
    marked = "".join(
        f'<font name="{latin}">{escape(run)}</font>' if _LATIN_RUN.fullmatch(run) else escape(run)
        for run in _LATIN_RUN.split(text)
        if run
    )
    return Paragraph(marked.replace("\n", "<br/>"), style)


def _moment(iso: str | None) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _payment_text(payment: Mapping[str, Any]) -> str:
    if payment.get("status") == NO_CHARGE:
        return str(LABELS["no_charge"])
    brand = str(payment.get("brand") or "card").upper()
    return f"{brand} **** {payment.get('last4') or '----'}"


def render_invoice_pdf(invoice: Mapping[str, Any]) -> bytes:
    """The A4 PDF of ``invoice`` (``Invoice.to_dict()``)."""
    _register_fonts()
    currency = str(invoice["currency"])

    def money(amount: int) -> str:
        return format_amount(amount, currency)

    title = _style("title", font=GOTHIC, size=18)
    heading = _style("heading", font=GOTHIC, size=10)
    text = _style("text")
    small = _style("small", size=8)
    figure = _style("figure", font=GOTHIC, alignment=TA_RIGHT)
    big = _style("big", font=GOTHIC, size=12, alignment=TA_RIGHT)

    issuer = invoice["issuer"]
    contact = invoice["billing_contact"]
    kinds: dict[str, str] = LABELS["kind"]  # type: ignore[assignment]
    header = Table(
        [
            [_p(str(LABELS["title"]), title), ""],
            [_p(str(LABELS["number"]), heading), _p(str(invoice["number"]), heading)],
            [_p(str(LABELS["issued_at"]), text), _p(_moment(invoice["issued_at"]), text)],
            [_p("種別 / Kind", text), _p(kinds.get(str(invoice["kind"]), "-"), text)],
        ],
        colWidths=[60 * mm, 110 * mm],
    )
    header.setStyle(TableStyle([("SPAN", (0, 0), (1, 0)), ("BOTTOMPADDING", (0, 0), (1, 0), 8)]))

    parties = Table(
        [
            [_p(str(LABELS["bill_to"]), heading), _p(str(LABELS["issuer"]), heading)],
            [
                _p(
                    f"{contact.get('company_name', '')} 御中\n"
                    f"{contact.get('country', '')}\n{contact.get('email', '')}",
                    text,
                ),
                _p(
                    f"{issuer['name']}\n{issuer['name_en']}\n"
                    f"{LABELS['registration']}: {issuer['registration_number']}\n"
                    f"{issuer['address']}\n{issuer['email']}",
                    text,
                ),
            ],
        ],
        colWidths=[85 * mm, 85 * mm],
    )
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))

    period = _p(
        f"{LABELS['period']}: {_moment(invoice.get('period_start'))} 〜 "
        f"{_moment(invoice.get('period_end'))}",
        text,
    )

    line_rows: list[list[Any]] = [
        [
            _p(str(LABELS[key]), heading)
            for key in ("description", "quantity", "unit_price", "term", "tax_rate", "amount")
        ]
    ]
    for line in invoice["lines"]:
        term = (
            str(LABELS["months"]).format(n=line["months"])
            if line.get("months") is not None
            else str(LABELS["days"]).format(n=line["days"])
        )
        line_rows.append(
            [
                _p(f"{line['description_ja']}\n{line['description']}", small),
                _p(f"{line['quantity']:,}", figure),
                _p(money(int(line["unit_price"])), figure),
                _p(term, small),
                _p(f"{line['tax_rate']}%", figure),
                _p(money(int(line["amount"])), figure),
            ]
        )
    lines = _grid(line_rows, [62 * mm, 16 * mm, 26 * mm, 24 * mm, 14 * mm, 28 * mm])

    credits_block: list[Any] = []
    if invoice["credits"]:
        credit_rows: list[list[Any]] = [
            [_p(str(LABELS["credits"]), heading), _p(str(LABELS["amount"]), heading)]
        ]
        for credit in invoice["credits"]:
            credit_rows.append(
                [
                    _p(f"{credit['description_ja']}\n{credit['description']}", small),
                    _p(money(-int(credit["amount"])), figure),
                ]
            )
        credits_block = [Spacer(1, 4 * mm), _grid(credit_rows, [142 * mm, 28 * mm])]

    total_rows: list[list[Any]] = [
        [_p(str(LABELS["subtotal"]), text), _p(money(int(invoice["subtotal"])), figure)],
        [_p(str(LABELS["credit"]), text), _p(money(-int(invoice["credit"])), figure)],
    ]
    for entry in invoice["tax_summary"]:
        rate = entry["rate"]
        total_rows += [
            [
                _p(str(LABELS["taxable"]).format(rate=rate), text),
                _p(money(int(entry["taxable"])), figure),
            ],
            [
                _p(str(LABELS["tax"]).format(rate=rate), text),
                _p(money(int(entry["tax"])), figure),
            ],
        ]
    total_rows.append(
        [
            _p(str(LABELS["total"]), _style("t", font=GOTHIC, size=12)),
            _p(money(int(invoice["total"])), big),
        ]
    )
    total_rows.append(
        [_p(str(LABELS["payment"]), text), _p(_payment_text(invoice["payment"]), figure)]
    )
    totals = Table(total_rows, colWidths=[92 * mm, 40 * mm], hAlign="RIGHT")
    totals.setStyle(
        TableStyle(
            [
                (
                    "LINEABOVE",
                    (0, len(total_rows) - 2),
                    (-1, len(total_rows) - 2),
                    0.8,
                    colors.black,
                ),
                (
                    "LINEBELOW",
                    (0, len(total_rows) - 2),
                    (-1, len(total_rows) - 2),
                    0.8,
                    colors.black,
                ),
            ]
        )
    )

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{invoice['number']} 適格請求書 / Invoice",
        author=str(issuer["name_en"]),
        subject=f"Invoice {invoice['number']}",
        creator="Suite Subscriptions",
        invariant=True,
    )
    document.build(
        [
            header,
            Spacer(1, 5 * mm),
            parties,
            Spacer(1, 4 * mm),
            period,
            Spacer(1, 4 * mm),
            lines,
            *credits_block,
            Spacer(1, 6 * mm),
            totals,
        ]
    )
    return buffer.getvalue()


def _grid(rows: Sequence[list[Any]], widths: Sequence[float]) -> Table:
    table = Table(list(rows), colWidths=list(widths), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.92, 0.92, 0.92)),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return table
