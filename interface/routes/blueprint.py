"""The blueprint class every API resource uses.

Unknown query parameters are refused (422) like unknown body fields: webargs
would otherwise drop them silently, and a misspelt ``min_position`` would be
a read that quietly does not wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import flask
import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

#: A view function or a ``MethodView`` class, returned as it was given.
F = TypeVar("F", bound=Callable[..., Any])


class StrictParser(FlaskParser):
    # ``None`` lets each schema's own ``Meta.unknown`` (RAISE) decide.
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {
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
        Benchmark: access_read_http (docs/performance.md item 13).
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


class ApiBlueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # untyped base
    """flask-smorest's blueprint with typed decorators.

    flask-smorest has no type information; these signatures are the only
    place the interface meets it, so every route is type-checked through them.
    """

    ARGUMENTS_PARSER = StrictParser()

    def route(self, rule: str, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().route(rule, **options))

    def arguments(self, schema: Any, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().arguments(schema, **options))

    def response(self, status_code: int, schema: Any = None, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().response(status_code, schema, **options))

    def alt_response(self, status_code: int, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().alt_response(status_code, **options))

    def doc(self, **options: Any) -> Callable[[F], F]:
        return cast(Callable[[F], F], super().doc(**options))
