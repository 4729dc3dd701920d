"""One HTTP attempt: POST the signed body, 2xx within the timeout is success.

Redirects are never followed (a 3xx is a failure), the connection goes to the
address the URL guard checked (``Target.address``; TLS still verifies the
host name), and the answer's body is read only up to a small limit (a longer
one closes the connection). Connections are kept alive per sending thread and
endpoint address (HTTP/1.1), so a busy endpoint is not paid a TCP (and TLS)
handshake per delivery.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import OrderedDict
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


def _connected(address: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection with Nagle off, as ``http.client`` itself sets it: on a
    kept-alive connection a small request would otherwise wait out the peer's
    delayed ACK (about 40 ms)."""
    sock = socket.create_connection((address, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = _connected(self._address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = _connected(self._address, self.port, self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


#: An idle kept-alive connection older than this is not reused (servers close
#: idle connections after 5–75 s; a POST on a connection they closed is lost).
IDLE_REUSE_SECONDS = 4.0
#: Kept-alive connections per sending thread (one per endpoint address, LRU).
CONNECTIONS_PER_THREAD = 8

_Key = tuple[str, str, int, str]
#: What a request on a connection the receiver closed while it was idle raises.
_STALE: tuple[type[BaseException], ...] = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class _Kept:
    def __init__(self, connection: http.client.HTTPConnection) -> None:
        self.connection = connection
        self.idle_since = time.monotonic()


class HttpSender:
    """POSTs with HTTP/1.1 keep-alive: each sending thread keeps one connection
    per endpoint address and reuses it while the receiver keeps it open.

    A request on a reused connection that the receiver had closed meanwhile
    fails before any answer; it is sent once more on a new connection (at
    least once: receivers de-duplicate by ``webhook-id``).
    """

    def __init__(self, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._tls = ssl.create_default_context()
        self._local = threading.local()

    def _kept(self) -> OrderedDict[_Key, _Kept]:
        kept: OrderedDict[_Key, _Kept] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = OrderedDict()
        return kept

    def _connection(self, target: Target) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to the target's checked address, and whether it is reused."""
        kept = self._kept()
        key = (target.scheme, target.host, target.port, target.address)
        found = kept.pop(key, None)
        if found is not None:
            if time.monotonic() - found.idle_since <= IDLE_REUSE_SECONDS:
                return found.connection, True
            found.connection.close()
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, self.timeout, self._tls)
            if target.scheme == "https"
            else _PinnedHTTPConnection(target, self.timeout)
        )
        return connection, False

    def _keep(self, target: Target, connection: http.client.HTTPConnection) -> None:
        kept = self._kept()
        kept[(target.scheme, target.host, target.port, target.address)] = _Kept(connection)
        while len(kept) > CONNECTIONS_PER_THREAD:
            _key, oldest = kept.popitem(last=False)
            oldest.connection.close()

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        started = time.monotonic()
        connection, reused = self._connection(target)
        try:
            try:
                answer = self._exchange(connection, target, body, headers)
            except _STALE:
                if not reused:
                    raise
                connection.close()  # the receiver had closed it: once more, on a new one
                connection, _reused = self._connection(target)
                answer = self._exchange(connection, target, body, headers)
            code = answer.status
            answer.read(MAX_ANSWER_BYTES)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            latency = int((time.monotonic() - started) * 1000)
            return AttemptOutcome(False, None, latency, f"{type(error).__name__}: {error}"[:300])
        if answer.isclosed() and not answer.will_close:
            self._keep(target, connection)  # read to its end and not closing: reusable
        else:
            connection.close()
        elapsed = time.monotonic() - started
        latency = int(elapsed * 1000)
        if elapsed > self.timeout:
            return AttemptOutcome(False, code, latency, f"answered after {elapsed:.1f} s")
        if 200 <= code < 300:
            return AttemptOutcome(True, code, latency, None)
        reason = "redirects are not followed" if 300 <= code < 400 else f"HTTP {code}"
        return AttemptOutcome(False, code, latency, reason)

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection,
        target: Target,
        body: bytes,
        headers: dict[str, str],
    ) -> http.client.HTTPResponse:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={**headers, "content-type": "application/json", "user-agent": USER_AGENT},
        )
        return connection.getresponse()

    def close(self) -> None:
        """Close this thread's kept connections."""
        for kept in self._kept().values():
            kept.connection.close()
        self._kept().clear()
