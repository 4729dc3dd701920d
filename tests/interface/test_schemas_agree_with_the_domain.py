"""The answer schemas state the domain's JSON forms, never a second list of keys.

The quote's JSON form is derived from its dataclasses (``domain.json_form``);
its marshmallow schemas (the OpenAPI document, the response check) must name
exactly the same fields with the same kinds of values. Adding a field to
``Quote``, ``QuoteLine`` or ``Credit`` without its schema fails here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from typing import Any

import pytest
from marshmallow import Schema, fields

from domain.json_form import json_field_types, json_keys
from domain.quote import Credit, Quote, QuoteLine
from interface.schemas import CreditSchema, QuoteLineSchema, QuoteSchema, ReceiptSchema

SCHEMAS: dict[type[Any], type[Schema]] = {
    Quote: QuoteSchema,
    QuoteLine: QuoteLineSchema,
    Credit: CreditSchema,
}


def agrees(hint: Any, field: fields.Field) -> str | None:
    """Why the schema field does not state the JSON form of ``hint`` (or ``None``)."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint, optional = args[0], True
    if optional != bool(field.allow_none):
        return f"allow_none should be {optional}"
    if not field.required:
        return "every key of the JSON form is always present: required=True"
    simple: dict[Any, type[fields.Field]] = {
        int: fields.Integer,
        str: fields.String,
        bool: fields.Boolean,
        date: fields.String,
        datetime: fields.String,
    }
    if hint in simple:
        return None if isinstance(field, simple[hint]) else f"should be {simple[hint].__name__}"
    if typing.get_origin(hint) is tuple:
        if not isinstance(field, fields.List):
            return "a tuple is a List"
        (item,) = [a for a in typing.get_args(hint) if a is not Ellipsis]
        inner = field.inner
        if dataclasses.is_dataclass(item):
            expected = SCHEMAS[item]  # type: ignore[index]
            if not (isinstance(inner, fields.Nested) and inner.nested is expected):
                return f"items should be Nested({expected.__name__})"
            return None
        return agrees(item, inner) if inner.required else None
    return f"no rule for {hint!r}"


@pytest.mark.parametrize("cls", list(SCHEMAS), ids=lambda c: c.__name__)
def test_each_quote_schema_names_exactly_its_dataclass_fields(cls: type[Any]) -> None:
    schema = SCHEMAS[cls]()
    assert list(schema.fields) == list(json_keys(cls))
    wrong = {
        name: reason
        for name, hint in json_field_types(cls).items()
        if (reason := agrees(hint, schema.fields[name])) is not None
    }
    assert not wrong, f"{SCHEMAS[cls].__name__} disagrees with {cls.__name__}: {wrong}"


def test_the_receipt_is_the_quote_plus_the_purchase() -> None:
    receipt = list(ReceiptSchema().fields)
    assert receipt[: len(json_keys(Quote))] == list(json_keys(Quote))
    assert set(receipt) - set(json_keys(Quote)) == {
        "organization_id",
        "checkout_id",
        "payment",
        "invoice_number",
        "version",
        "position",
    }
