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

from flask import Flask, Response, jsonify


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


def create_bare_page_app(html_path: str | Path) -> Flask:
    """The console page's baseline: the same HTML from a template compiled once,
    rendered per request — what Flask, Jinja and gunicorn cost by themselves."""
    app = Flask("bare-page")
    template = app.jinja_env.from_string(Path(html_path).read_text())

    @app.get("/console/orgs/<organization_id>/")
    def organization_page(organization_id: str) -> str:
        return template.render()

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app


app: Flask | None = None
if "BENCH_BARE_HTML" in os.environ:
    app = create_bare_page_app(os.environ["BENCH_BARE_HTML"])
elif "BENCH_BARE_BODY" in os.environ:
    app = create_bare_app(os.environ["BENCH_BARE_BODY"])
