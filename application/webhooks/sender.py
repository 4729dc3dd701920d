"""One HTTP attempt: POST the signed body, 2xx within the timeout is success.

Redirects are never followed (a 3xx is a failure), the connection goes to the
address the URL guard checked (``Target.address``; TLS still verifies the
host name), and the answer's body is read only up to a small limit.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from application.webhooks.url_guard import Target

DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "suitesub-webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    succeeded: bool
    response_code: int | None
    latency_ms: int
    error: str | None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpSender:
    def __init__(self, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._tls = ssl.create_default_context()

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, self.timeout, self._tls)
            if target.scheme == "https"
            else _PinnedHTTPConnection(target, self.timeout)
        )
        started = time.monotonic()
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={
                    **headers,
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                },
            )
            answer = connection.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            code = answer.status
        except (OSError, http.client.HTTPException) as error:
            latency = int((time.monotonic() - started) * 1000)
            return AttemptOutcome(False, None, latency, f"{type(error).__name__}: {error}"[:300])
        finally:
            connection.close()
        elapsed = time.monotonic() - started
        latency = int(elapsed * 1000)
        if elapsed > self.timeout:
            return AttemptOutcome(False, code, latency, f"answered after {elapsed:.1f} s")
        if 200 <= code < 300:
            return AttemptOutcome(True, code, latency, None)
        reason = "redirects are not followed" if 300 <= code < 400 else f"HTTP {code}"
        return AttemptOutcome(False, code, latency, reason)
