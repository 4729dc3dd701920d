"""The blueprint class every API resource uses.

Unknown query parameters are refused (422) like unknown body fields: webargs
would otherwise drop them silently, and a misspelt ``min_position`` would be
a read that quietly does not wait.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser


class StrictParser(FlaskParser):  # type: ignore[misc]
    # ``None`` lets each schema's own ``Meta.unknown`` (RAISE) decide.
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: What each query schema loads from an empty query string (its defaults).
        self._empty_query: dict[int, tuple[ma.Schema, dict[str, Any]]] = {}

    def parse(self, argmap: Any, req: Any = None, **kwargs: Any) -> Any:
        """As webargs parses; an empty query string reuses its parse (its defaults).

        Most GETs (``GET .../access`` above all) send no query string, and
        loading nothing through the schema was a tenth of such a request.
        Only a schema instance whose defaults are constants qualifies, and
        only when loading nothing succeeded once: the answer is the same.
        """
        if (
            kwargs.get("location") in ("query", "querystring")
            and kwargs.get("validate") is None
            and isinstance(argmap, ma.Schema)
            and not (flask.request if req is None else req).query_string
        ):
            known = self._empty_query.get(id(argmap))
            if known is not None and known[0] is argmap:
                return dict(known[1])
            data = super().parse(argmap, req, **kwargs)
            if _constant_defaults(argmap):
                self._empty_query[id(argmap)] = (argmap, dict(data))
            return data
        return super().parse(argmap, req, **kwargs)


def _constant_defaults(schema: ma.Schema) -> bool:
    return not any(callable(f.load_default) for f in schema.load_fields.values())


class ApiBlueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictParser()
