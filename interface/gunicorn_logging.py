"""gunicorn's logger for the API: no query value and no card number in its lines.

``suitesub serve`` uses it; a deployment that runs gunicorn itself sets
``logger_class = "interface.gunicorn_logging.CardSafeGunicornLogger"`` (see
docs/operations.md). What is masked, and why: ``interface.log_masking``.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from interface.log_masking import (
    add_card_number_filter,
    loggable_path,
    loggable_query,
    loggable_request_line,
    loggable_target,
    mask_card_numbers_in_log_text,
)

#: gunicorn's own atoms that no client shapes (time, status, sizes, durations).
_SERVICE_ATOMS = frozenset({"t", "s", "b", "B", "T", "D", "M", "L", "p", "h", "H", "m"})
#: Atoms that hold the request target (or its query) a client wrote.
_TARGET_ATOMS = frozenset({"{raw_uri}e", "{request_uri}e"})
_QUERY_ATOMS = frozenset({"q", "{query_string}e"})
_PATH_ATOMS = frozenset({"U", "{path_info}e", "{script_name}e"})
#: The access log's format: the Apache "combined" fields, the duration and the request id.
ACCESS_LOG_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms %({x-request-id}o)s'
)


class CardSafeGunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing no query value and no card number."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        add_card_number_filter(self.error_log)  # setup runs again on every reload

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        masked: dict[str, Any] = {}
        for key, value in atoms.items():
            if not isinstance(value, str) or key in _SERVICE_ATOMS:
                masked[key] = value
            elif key == "r":
                masked[key] = loggable_request_line(value)
            elif key in _TARGET_ATOMS:
                masked[key] = loggable_target(value)
            elif key in _QUERY_ATOMS:
                masked[key] = loggable_query(value)
            elif key in _PATH_ATOMS:
                masked[key] = loggable_path(value)
            else:
                masked[key] = mask_card_numbers_in_log_text(value)
        return masked
