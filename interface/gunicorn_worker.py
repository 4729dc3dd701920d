"""gunicorn's own refusals in the API's one JSON error shape.

Some requests never reach the Flask app: gunicorn itself refuses a request
line longer than ``limit_request_line`` (414), too many or too long header
fields (431), a malformed request line, header or chunk (400), an unknown
transfer coding (501). It renders those answers as HTML with
``gunicorn.util.write_error``; :class:`JsonErrorWorker` — gunicorn's sync
worker otherwise unchanged — replaces that one function *in its own worker
process*, so gunicorn still decides the status, logs the refusal and writes
the access log line, and only the body becomes
``{"error": {"code", "message", "details", "request_id"}}``.

The message never repeats what the client sent (a request line may carry a
card number in its query string): it says which limit was broken.

Use it with ``gunicorn --worker-class interface.gunicorn_worker.JsonErrorWorker``
(``suitesub serve`` does).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

from application.ids import random_id
from interface.errors import HTTP_ERROR_CODES

#: What each of gunicorn's own refusals means, in words a client can act on.
_MESSAGES = {
    400: "The request is malformed (request line, header or chunked body).",
    403: "The request is forbidden.",
    414: "The request line (method, path and query string) is too long.",
    417: "The Expect header is not supported.",
    431: "There are too many header fields, or one is too long.",
    500: "Something went wrong on our side; it has been logged.",
    501: "The transfer coding is not supported.",
}


def json_error_answer(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 answer (status line, headers, JSON body) for a refusal."""
    code = HTTP_ERROR_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
    body = json.dumps(
        {
            "error": {
                "code": code,
                "message": _MESSAGES.get(status, reason),
                "details": {},
                "request_id": random_id("req_"),
            }
        },
        separators=(",", ":"),
    ).encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    ).encode("latin-1")
    return head + body


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s signature, answering JSON (``mesg`` is not sent)."""
    del mesg  # may quote the request line or a header the client sent
    util.write_nonblock(sock, json_error_answer(status_int, reason))


class JsonErrorWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker whose own error answers are JSON, not HTML."""

    def init_process(self) -> Any:
        # This process is a worker of ours: its gunicorn renders errors our way.
        util.write_error = write_json_error
        return super().init_process()
