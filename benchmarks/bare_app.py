"""The baseline web app: a bare Flask endpoint that answers a fixed access view.

Same path shape and the same JSON document (re-serialised per request, as the
real view is) but no authentication, no database, no schema: what Flask and
gunicorn cost by themselves. The document comes from ``BENCH_BARE_BODY``
(a JSON file); ``gunicorn benchmarks.bare_app:app``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template


def create_bare_app(body_path: str | Path) -> Flask:
    payload: dict[str, Any] = json.loads(Path(body_path).read_text())
    app = Flask("bare")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.get("/v1/organizations/<organization_id>/access")
    def access(organization_id: str) -> Response:
        return jsonify(payload)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app


def create_bare_page_app(context_path: str | Path) -> Flask:
    """The console page's baseline: the console's own template rendered with the
    same context per request, as the real page is — but no session, no token, no
    database, no view or aggregate read: what Flask, Jinja and the translations
    cost by themselves. The context comes from ``BENCH_BARE_PAGE`` (a JSON file)."""
    from types import SimpleNamespace

    from application.catalog_loader import default_catalog
    from domain.facts import facts_from_dict
    from interface import console
    from interface.auth import Principal
    from interface.console.blueprint import console as console_blueprint
    from interface.console.pages.common import layout_context
    from interface.console.security import CSRF_FIELD

    saved = json.loads(Path(context_path).read_text())
    facts = facts_from_dict(saved["facts"])
    view = saved["view"]
    principal = Principal(saved["user_id"], saved["organization_id"], is_operator=False)
    app = Flask("bare-page")
    app.extensions["suitesub"] = SimpleNamespace(catalog=default_catalog())
    console.i18n.init_app(app)
    # The console's blueprint for its templates, static files and URLs only.
    app.register_blueprint(console_blueprint, url_prefix=console.CONSOLE_PREFIX)
    app.context_processor(layout_context)  # the layout's words, language, prices

    @app.get("/bare/orgs/<organization_id>/")
    def organization_page(organization_id: str) -> str:
        return render_template(
            saved["template"],
            organization_id=organization_id,
            facts=facts,
            view=view,
            bundle=view["bundle"],
            principal=principal,
            csrf_token=lambda: saved["csrf_token"],
            csrf_field=CSRF_FIELD,
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app


app: Flask | None = None
if "BENCH_BARE_PAGE" in os.environ:
    app = create_bare_page_app(os.environ["BENCH_BARE_PAGE"])
elif "BENCH_BARE_BODY" in os.environ:
    app = create_bare_app(os.environ["BENCH_BARE_BODY"])
