"""Event data is plain JSON, so what is stored is exactly what was decided and a
replay folds the very values the aggregate folded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain import events as ev
from domain.tamper_evidence import require_plain_json
from tests.domain.builders import T0, organization_with


@pytest.mark.parametrize(
    "value",
    [
        {"service": "crm", "seats": 5, "admins": ["u-a"], "by": None, "ok": True},
        {"quote": {"lines": [{"amount": 720_000}], "credits": []}},
    ],
)
def test_plain_json_values_are_accepted(value: dict[str, Any]) -> None:
    require_plain_json(value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"period_start": date(2026, 1, 1)}, "data.period_start"),
        ({"amount_paid": 1.5}, "data.amount_paid"),
        ({"amount_paid": Decimal(1)}, "data.amount_paid"),
        ({"admins": ("u-a",)}, "data.admins"),
        ({"quote": {"lines": [{"amount": 0.1}]}}, "data.quote.lines[0].amount"),
        ({"payment": {1: "x"}}, "data.payment"),
    ],
    ids=["date", "float", "decimal", "tuple", "nested float", "non-string key"],
)
def test_values_that_json_would_change_are_refused_naming_where(
    value: dict[str, Any], path: str
) -> None:
    with pytest.raises(TypeError, match=path.replace("[", r"\[").replace("]", r"\]")):
        require_plain_json(value)


def test_an_event_with_a_value_that_is_not_plain_json_is_never_created() -> None:
    org = organization_with()
    with pytest.raises(TypeError, match=r"data\.service"):
        org.trigger_event(ev.ServiceDowngradedToFree, timestamp=T0, service=("crm",))
    assert org.version == 1


def test_the_quick_check_agrees_with_the_naming_walk_on_any_value() -> None:
    """require_plain_json's quick check (benchmark renewal_sweep) accepts exactly
    what the walk that names the refused place accepts."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from domain.tamper_evidence import _require_plain_json

    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=3)
        | st.floats(allow_nan=False)
        | st.dates()
    )
    values = st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.tuples(children)
            | st.dictionaries(st.text(max_size=2) | st.integers(), children, max_size=3)
        ),
        max_leaves=10,
    )

    def outcome(check: Any, value: Any) -> str | None:
        try:
            check(value)
        except TypeError as refused:
            return str(refused)
        return None

    @settings(max_examples=400, deadline=None)
    @given(values)
    def agree(value: Any) -> None:
        assert outcome(require_plain_json, value) == outcome(
            lambda v: _require_plain_json(v, "data"), value
        )

    agree()
