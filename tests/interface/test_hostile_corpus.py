"""The hostile-input corpus (tests/hostile_corpus.py) on every store, in-process.

Every hostile value in every place a string goes is refused with a JSON
error; afterwards nothing was recorded, the views (followed by the API, as on
the embedded default) equal a rebuild from the log, no event was passed over
and the log verifies.
"""

from __future__ import annotations

from flask.testing import FlaskClient

from application.audit_verification import verify_log
from application.bootstrap import Services
from application.projections.rebuild import rebuild_views
from tests.hostile_corpus import assert_refused, hostile_requests, sendable
from tests.interface.conftest import CRM_YEARLY, Caller, operator_headers, user_headers


def test_no_hostile_input_is_recorded_and_the_views_match_a_rebuild(
    services: Services, client: FlaskClient, caller: Caller
) -> None:
    org = caller.register()
    caller.subscribe(org, "crm", CRM_YEARLY)
    recorded = services.app.recorder.max_notification_id()
    sent = 0

    for request in hostile_requests(org):
        headers = operator_headers() if request.operator else user_headers(org, "u-alice")
        if not sendable(request):
            continue
        answer = client.open(
            request.path,
            method=request.method,
            headers={**headers, **request.headers},
            **(
                {"data": request.raw, "content_type": "application/json"}
                if request.raw is not None
                else {"json": request.body}
            ),
        )
        assert_refused(request, answer.status_code, answer.get_json())
        sent += 1

    assert sent > 500
    assert services.app.recorder.max_notification_id() == recorded
    services.read_model.catch_up()
    report = rebuild_views(services.app, services.read_model.views, faults=services.view_faults)
    assert report.consistent, report.differences
    assert services.view_faults is not None
    assert services.view_faults.summary()["count"] == 0
    assert verify_log(services.app).ok
