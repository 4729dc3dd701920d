"""Real webhook receivers on 127.0.0.1 for the delivery tests.

:class:`Receiver` is a threaded HTTP server that verifies every request with
the ``standardwebhooks`` library (the receiver's side), records what it got,
and can be told to fail, stall (hold requests until released) or redirect.
``python -m tests.receivers PORT SECRET LOG`` runs one in its own process
(appending each verified id to LOG), so a test can kill it mid-delivery.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    envelope: dict[str, Any] | None
    verified: bool
    #: When it was answered (``time.monotonic()``), to compare receivers' arrivals.
    at: float = field(default_factory=time.monotonic)


@dataclass
class Behaviour:
    #: Answer this status (None: 200 for verified requests, 400 otherwise).
    status: int | None = None
    #: Fail this many requests (500) before answering normally.
    fail_next: int = 0
    #: Fail every request whose envelope names this organization.
    fail_organization: str | None = None
    #: Hold requests until this is set.
    release: threading.Event = field(default_factory=threading.Event)
    stall: bool = False
    #: Hold the requests whose envelope names this organization until ``release``.
    stall_organization: str | None = None
    #: Close each connection after answering, without saying so (a kept-alive
    #: connection the receiver dropped while the sender thinks it open).
    drop_connections: bool = False


class Receiver:
    def __init__(self, secrets: list[str], port: int = 0, *, keep_alive: bool = False) -> None:
        self.secrets = secrets
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        #: The client (address, port) of each request: one per connection used.
        self.connections: list[tuple[str, int]] = []
        self.stalled = threading.Semaphore(0)
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 keeps connections open between requests (1.0 closes each).
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.connections.append(self.client_address[:2])
                receiver.handle(self, body)
                if receiver.behaviour.drop_connections:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.behaviour.release.set()
        self.server.shutdown()
        self.server.server_close()

    def verify(self, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
        for secret in self.secrets:
            try:
                verified: dict[str, Any] = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return verified
        return None

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        envelope = self.verify(headers, body)
        behaviour = self.behaviour
        held = (
            envelope is not None
            and behaviour.stall_organization is not None
            and envelope["organization_id"] == behaviour.stall_organization
            and not behaviour.release.is_set()
        )
        if behaviour.stall or held:
            self.stalled.release()
            behaviour.release.wait(30)
        status = 200 if envelope is not None else 400
        if behaviour.status is not None:
            status = behaviour.status
        elif behaviour.fail_next > 0:
            behaviour.fail_next -= 1
            status = 500
        elif (
            envelope is not None
            and behaviour.fail_organization is not None
            and envelope["organization_id"] == behaviour.fail_organization
        ):
            status = 500
        with self._changed:
            self.received.append(Received(headers, body, envelope, envelope is not None))
            self._changed.notify_all()
        request.send_response(status)
        if 300 <= status < 400:
            request.send_header("Location", "https://example.com/elsewhere")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def accepted_ids(self) -> list[str]:
        """Ids of the verified envelopes answered 2xx, in arrival order."""
        return [r.envelope["id"] for r in self.received if r.envelope is not None]

    def envelopes(self) -> list[dict[str, Any]]:
        """Every verified envelope, in arrival order (whatever the answer was)."""
        return [r.envelope for r in self.received if r.envelope is not None]

    def ids_of(self, organization_id: object) -> list[str]:
        """Ids of the verified envelopes of one organization, in arrival order."""
        return [e["id"] for e in self.envelopes() if e["organization_id"] == str(organization_id)]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests have arrived."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.received) >= count, timeout)


@contextmanager
def receiver(secrets: list[str], *, keep_alive: bool = False) -> Iterator[Receiver]:
    running = Receiver(secrets, keep_alive=keep_alive).start()
    try:
        yield running
    finally:
        running.stop()


def _serve_in_process(port: int, secret: str, log: Path) -> None:
    """Verify and append each accepted id to ``log``; a request for an id listed
    in ``log.with_suffix('.stall')`` is held (the test kills the process then)."""
    stall_file = log.with_suffix(".stall")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                envelope = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                self.send_response(400)
                self.end_headers()
                return
            if stall_file.exists() and envelope["id"] in stall_file.read_text():
                with log.with_suffix(".held").open("a") as held:
                    held.write(envelope["id"] + "\n")
                threading.Event().wait(60)
            with log.open("a") as out:
                out.write(json.dumps(envelope["id"]) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    log.with_suffix(".ready").write_text("ready")
    server.serve_forever()


if __name__ == "__main__":
    _serve_in_process(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
