"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import logging
from typing import Any

from flask.views import MethodView

from interface import schemas as s
from interface.errors import ApiError
from interface.routes.blueprint import ApiBlueprint
from interface.routes.organizations import services

log = logging.getLogger("suitesub.api")

blp = ApiBlueprint("health", __name__, description="Liveness and readiness.")


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, s.HealthSchema)
    @blp.doc(security=[])
    def get(self) -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, s.HealthSchema)
    @blp.alt_response(503, schema=s.ErrorAnswerSchema, description="The database does not answer")
    @blp.doc(security=[])
    def get(self) -> dict[str, Any]:
        """The database answers; `views.lag` = latest log position − views' position.

        The top level is the access and directory views; `views.invoices` is
        the invoices view, followed on its own (so it can lag on its own).

        `views.faults`: events the views passed over because they cannot be
        decoded or applied (docs/operations.md); the service stays ready.
        """
        found = services()
        try:
            views: dict[str, Any] = dict(found.read_model.lag())
            views["invoices"] = found.invoices.lag()
            if found.view_faults is not None:
                views["faults"] = found.view_faults.summary()
        except Exception:
            log.exception("readiness check failed")
            raise ApiError(503, "database_unavailable", "The database does not answer.") from None
        return {"status": "ready", "views": views}
