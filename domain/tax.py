"""Consumption tax (SPEC §2): once, on the amount after credits, rounded down.

The quote, the invoice's tax summary and every later charge use this one
function, so what a customer was quoted, charged and invoiced cannot differ.
"""

from __future__ import annotations


def consumption_tax(taxable: int, rate_percent: int) -> int:
    """The tax on ``taxable`` minor units at ``rate_percent``, rounded down to the unit.

    Applied once per rate per invoice, never per line: ten lines of ¥5 at
    10 % owe ¥5 of tax, not ten times ¥0.
    """
    if taxable < 0:
        msg = f"taxable amount {taxable} is negative"
        raise ValueError(msg)
    return taxable * rate_percent // 100
