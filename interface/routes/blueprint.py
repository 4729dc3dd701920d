"""The blueprint class every API resource uses.

Unknown query parameters are refused (422) like unknown body fields: webargs
would otherwise drop them silently, and a misspelt ``min_position`` would be
a read that quietly does not wait.
"""

from __future__ import annotations

from typing import ClassVar

import flask_smorest
from webargs.flaskparser import FlaskParser


class StrictParser(FlaskParser):  # type: ignore[misc]
    # ``None`` lets each schema's own ``Meta.unknown`` (RAISE) decide.
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }


class ApiBlueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictParser()
