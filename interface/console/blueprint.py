"""The console's one blueprint, and what every page needs from the app."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, send_from_directory

from application.bootstrap import Services


class ConsoleBlueprint(Blueprint):
    def send_static_file(self, filename: str) -> Response:
        """The assets, without an ETag: Flask's (``"mtime.size-checksum"``) is a
        run of digits that the card guard may read as a card number when the
        browser sends it back in ``If-None-Match``; ``Last-Modified`` is enough."""
        assert self.static_folder is not None
        return send_from_directory(
            self.static_folder,
            filename,
            max_age=self.get_send_file_max_age(filename),
            etag=False,
        )


console = ConsoleBlueprint(
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
