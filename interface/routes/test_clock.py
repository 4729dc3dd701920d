"""``/v1/test-clock`` (SPEC §7): only when started with ``SUITE_TEST_CLOCK=1``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView

from application.test_clock import TestClock, TestClockReading
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
    description="Move or freeze the service's time (test and demo deployments only).",
)


def _test_clock() -> TestClock:
    """The clock, once the caller is known to be an operator; 404 when disabled."""
    current_principal().require_operator()
    clock = services().test_clock
    if clock is None:
        raise ApiError(
            404, "not_found", "The test clock is off (start the service with SUITE_TEST_CLOCK=1)."
        )
    return clock


def _change(clock: TestClock, body: dict[str, Any]) -> TestClockReading:
    if "set_to" in body:
        return clock.set_to(body["set_to"])
    if "frozen" in body:
        return clock.freeze(body["frozen"])
    if "advance_days" in body:
        return clock.advance(timedelta(days=body["advance_days"]))
    return clock.advance(timedelta(seconds=body["advance_seconds"]))


@blp.route("")
class TestClockView(MethodView):
    operator_only = frozenset({"GET", "POST"})

    @blp.response(200, s.TestClockSchema)
    @errors(403, 404)
    def get(self) -> dict[str, Any]:
        """The service's current time (operator)."""
        return _test_clock().reading().to_dict()

    @blp.arguments(s.TestClockChangeSchema)
    @blp.response(200, s.TestClockSchema)
    @errors(403, 404, 409, 422)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Move the service's time: advance by days or seconds, set it, or freeze it (operator).

        Exactly one of `advance_days`, `advance_seconds`, `set_to` or `frozen`.
        `set_to` may go back only while the log is empty (`409 test_clock_backwards`);
        the clock stays between 1970-01-01 and 9000-01-01 (UTC).
        """
        return _change(_test_clock(), body).to_dict()
