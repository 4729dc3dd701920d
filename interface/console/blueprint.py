"""The console's one blueprint, and what every page needs from the app."""

from __future__ import annotations

from flask import Blueprint, current_app

from application.bootstrap import Services

console = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def services() -> Services:
    """The same services the ``/v1`` routes use (built once by ``create_app``)."""
    found: Services = current_app.extensions["suitesub"]
    return found
