"""``/v1/test-clock`` (SPEC §7): only when started with ``SUITE_TEST_CLOCK=1``."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from application.test_clock import TestClock
from interface import schemas as s
from interface.errors import ApiError
from interface.request_guard import current_principal
from interface.routes.blueprint import ApiBlueprint
from interface.routes.documentation import errors
from interface.routes.organizations import services

blp = ApiBlueprint(
    "test_clock",
    __name__,
    url_prefix="/v1/test-clock",
    description="Move the service's time forward (test and demo deployments only).",
)

SECONDS_PER_DAY = 86_400


def _test_clock() -> TestClock:
    """The clock, once the caller is known to be an operator; 404 when disabled."""
    current_principal().require_operator()
    clock = services().test_clock
    if clock is None:
        raise ApiError(
            404, "not_found", "The test clock is off (start the service with SUITE_TEST_CLOCK=1)."
        )
    return clock


def _reading(clock: TestClock) -> dict[str, Any]:
    offset = clock.offset()
    now = clock.base.now() + offset
    return {"now": now.isoformat(), "offset_seconds": int(offset.total_seconds())}


@blp.route("")
class TestClockView(MethodView):
    operator_only = frozenset({"GET", "POST"})

    @blp.response(200, s.TestClockSchema)
    @errors(403, 404)
    def get(self) -> dict[str, Any]:
        """The service's current time (operator)."""
        return _reading(_test_clock())

    @blp.arguments(s.TestClockAdvanceSchema)
    @blp.response(200, s.TestClockSchema)
    @errors(403, 404, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Move the service's time forward by days or seconds (operator)."""
        clock = _test_clock()
        if ("advance_days" in body) == ("advance_seconds" in body):
            raise ApiError(
                422,
                "validation_failed",
                "Send exactly one of advance_days or advance_seconds.",
                {"fields": {"advance_days": ["send exactly one of advance_days, advance_seconds"]}},
            )
        seconds = body.get("advance_seconds", body.get("advance_days", 0) * SECONDS_PER_DAY)
        clock.advance(seconds)
        return _reading(clock)
