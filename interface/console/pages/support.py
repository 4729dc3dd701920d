"""The support screens (operator): the directory by state, an organization's
history at a glance, its access view at any moment, and its chain check.

The history is the audit tool's: ``application.audit.replay`` folds the
stream up to a moment with the same pure rules the API uses, and explains
each change of the access view by the event (or the passing of time) that
caused it; ``verify_organization`` is ``suitesub audit verify`` for one
organization.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from application.audit import ExplainedStep, parse_time, replay
from application.audit_verification import verify_organization
from domain.errors import DomainError
from domain.facts import BundleState
from interface.console.blueprint import console, services
from interface.console.pages.admin import stream
from interface.console.pages.common import refusal
from interface.console.signed_in import operator
from interface.console.words import DELIVERY_WORDS, event_sentence

DIRECTORY_PAGE = 50
#: Deliveries shown per endpoint on an organization's webhooks page (newest first).
DELIVERIES_SHOWN = 50


@console.get("/support/")
def support_directory() -> ResponseReturnValue:
    operator()
    state = request.args.get("state") or None
    page = services().read_model.organizations(
        state=state, after=request.args.get("after") or None, limit=DIRECTORY_PAGE
    )
    return render_template(
        "console/support_directory.html",
        states=BundleState.ALL,
        state=state,
        organizations=page["organizations"],
        next_page=page["next"],
    )


def since_previous_event(steps: tuple[ExplainedStep, ...]) -> list[ExplainedStep]:
    """The last event's step and what time changed after it, up to the moment shown."""
    last_event = max((i for i, step in enumerate(steps) if step.cause == "event"), default=0)
    return list(steps[last_event:])


def _moment(organization_id: UUID) -> dict[str, Any]:
    """The "as of" picker's answer: the replay at that time or version, or its refusal."""
    as_of = request.args.get("as_of", "").strip()
    version = request.args.get("version", "").strip()
    if not as_of and not version:
        return {}
    app = services().app
    try:
        replayed = replay(
            app,
            organization_id,
            app.catalog,
            as_of=parse_time(as_of) if as_of else None,
            version=int(version) if version.isdigit() else None,
            explain=True,
        )
    except DomainError as error:
        return {"as_of": as_of, "moment_refusal": refusal(error)}
    assert replayed.explanation is not None
    return {
        "as_of": as_of,
        "replayed": replayed,
        "replayed_view": replayed.view.to_dict(),
        "changes": since_previous_event(replayed.explanation),
    }


def timeline(organization_id: UUID) -> list[dict[str, Any]]:
    """Every event in plain words, who and when, and between them what time alone
    changed (a trial's end passing), each with the changes of the access view."""
    app = services().app
    events = {event["version"]: event for event in stream(organization_id)}
    replayed = replay(app, organization_id, app.catalog, now=app.clock.now(), explain=True)
    assert replayed.explanation is not None
    entries = []
    for step in replayed.explanation:
        event = events.get(step.version) if step.cause == "event" else None
        entries.append(
            {
                "at": step.at.isoformat(),
                "by": step.by,
                "event": event,
                "sentence": None if event is None else event_sentence(event["type"], event["data"]),
                "changes": step.changes,
            }
        )
    return entries


@console.get("/support/orgs/<uuid:organization_id>")
def support_organization(organization_id: UUID) -> ResponseReturnValue:
    operator()
    return render_template(
        "console/support_organization.html",
        organization_id=organization_id,
        facts=services().app.facts(organization_id),
        view=services().read_model.access(organization_id),
        timeline=timeline(organization_id),
        **_moment(organization_id),
    )


@console.get("/support/orgs/<uuid:organization_id>/verification")
def support_verification(organization_id: UUID) -> ResponseReturnValue:
    operator()
    facts = services().app.facts(organization_id)  # 404 for an unknown organization
    return render_template(
        "console/support_verification.html",
        organization_id=organization_id,
        facts=facts,
        verification=verify_organization(services().app, organization_id),
    )


@console.get("/support/orgs/<uuid:organization_id>/webhooks")
def support_webhooks(organization_id: UUID) -> ResponseReturnValue:
    """Each endpoint's deliveries of this organization's integration events: status,
    attempts, the last answer (code, latency, error) and the next attempt — the
    operators' API (``GET /v1/webhook-endpoints/{id}/deliveries?organization_id=``)."""
    operator()
    facts = services().app.facts(organization_id)  # 404 for an unknown organization
    status = request.args.get("status") or None
    if status not in DELIVERY_WORDS:
        status = None
    endpoints = services().webhooks.endpoints
    shown = [
        {
            "endpoint": endpoint,
            "deliveries": endpoints.deliveries(
                endpoint["id"],
                status=status,
                organization_id=organization_id,
                limit=DELIVERIES_SHOWN,
            )["deliveries"],
        }
        for endpoint in endpoints.list()
    ]
    return render_template(
        "console/support_webhooks.html",
        organization_id=organization_id,
        facts=facts,
        status=status,
        statuses=tuple(DELIVERY_WORDS),
        endpoints=shown,
        shown_at_most=DELIVERIES_SHOWN,
    )


@console.post(
    "/support/orgs/<uuid:organization_id>/webhooks/<string:endpoint_id>"
    "/deliveries/<string:delivery_id>/retry"
)
def retry_delivery(
    organization_id: UUID, endpoint_id: str, delivery_id: str
) -> ResponseReturnValue:
    """Attempt a delivery again now (``POST .../deliveries/{id}/retry``)."""
    operator()
    found = services().webhooks
    found.endpoints.retry(endpoint_id, delivery_id)
    found.dispatcher.wake()
    flash(_("The delivery will be attempted again now."))
    return redirect(url_for("console.support_webhooks", organization_id=organization_id))
