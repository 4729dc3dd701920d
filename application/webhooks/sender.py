"""One HTTP attempt: POST the signed body, 2xx within the timeout is success.

Redirects are never followed (a 3xx is a failure), the connection goes to the
address the URL guard checked (``Target.address``; TLS still verifies the
host name), and the answer's body is read only up to a small limit (a longer
one closes the connection). Connections are kept alive per sending thread and
endpoint address (HTTP/1.1), so a busy endpoint is not paid a TCP (and TLS)
handshake per delivery. The HTTP/1.1 protocol (framing, keep-alive) is h11's,
the sans-I/O library httpx and uvicorn are built on; this module owns only
the socket: the checked address, the timeout, the answer limit.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import h11

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
    """A TCP connection with Nagle off: a request is one ``sendall`` and the
    answer is awaited at once, so nothing is gained by holding small segments
    (on a kept-alive connection a request would otherwise wait out the peer's
    delayed ACK, about 40 ms)."""
    sock = socket.create_connection((address, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


#: An idle kept-alive connection older than this is not reused (servers close
#: idle connections after 5–75 s; a POST on a connection they closed is lost).
IDLE_REUSE_SECONDS = 4.0
#: Kept-alive connections per sending thread (one per endpoint address, LRU).
CONNECTIONS_PER_THREAD = 8
#: An answer's status line and headers longer than this are a failure.
MAX_HEAD_BYTES = 64 * 1024
_READ_SIZE = 16 * 1024
#: What ``http.client`` refuses in a request target (request splitting).
_UNSAFE_PATH = re.compile("[\x00-\x20\x7f]")

_Key = tuple[str, str, int, str]


class ProtocolError(http.client.HTTPException):
    """The receiver's answer is not HTTP/1.x as h11 reads it."""


class StaleConnection(ConnectionError):
    """A kept connection the receiver had closed: nothing of an answer came."""


#: What a request on a connection the receiver closed while it was idle raises.
_STALE: tuple[type[BaseException], ...] = (
    StaleConnection,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


def host_header(target: Target) -> bytes:
    """``Host`` as ``http.client`` writes it: the port only when not the default."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    value = host if target.port == default else f"{host}:{target.port}"
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        return value.encode("idna")


class _Connection:
    """One HTTP/1.1 connection to a checked address, its protocol kept by h11
    (framing: Content-Length, chunked, interim 1xx, close-delimited; keep-alive).

    A request is one ``sendall`` of head and body, and the answer's body is
    read and dropped. Why not ``http.client``: per request it sends the head
    and the body in two writes and parses the answer's headers with the
    ``email`` package; on the webhook_delivery benchmark that was a third of
    a lane's CPU per delivery.
    """

    def __init__(self, target: Target, timeout: float, tls: ssl.SSLContext) -> None:
        self.target = target
        self.timeout = timeout
        self._tls = tls
        self._sock: socket.socket | None = None
        self._protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.host = host_header(target)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _open(self) -> socket.socket:
        if self._sock is None:
            raw = _connected(self.target.address, self.target.port, self.timeout)
            if self.target.scheme == "https":
                # The checked address is dialled; TLS still verifies the host name.
                self._sock = self._tls.wrap_socket(raw, server_hostname=self.target.host)
            else:
                self._sock = raw
        return self._sock

    def exchange(
        self, headers: list[tuple[bytes, bytes]], body: bytes, *, reused: bool
    ) -> tuple[int, bool]:
        """Send one POST; the answer's status and whether the connection may be reused."""
        protocol = self._protocol
        try:
            request = protocol.send(
                h11.Request(method=b"POST", target=self.target.path, headers=headers)
            )
            data = protocol.send(h11.Data(data=body))
            done = protocol.send(h11.EndOfMessage())
        except h11.LocalProtocolError as refused:  # a line break in a header, say
            raise http.client.InvalidURL(str(refused)) from None
        sock = self._open()
        sock.sendall(b"".join((request or b"", data or b"", done or b"")))
        return self._answer(sock, reused=reused)

    def _answer(self, sock: socket.socket, *, reused: bool) -> tuple[int, bool]:
        protocol = self._protocol
        status: int | None = None
        heard = closed = False
        body_bytes = 0
        while True:
            try:
                event = protocol.next_event()
            except h11.RemoteProtocolError as broken:
                if not closed:
                    raise ProtocolError(str(broken)) from None
                if status is None:  # closed within the head
                    closing = "the receiver closed the connection"
                    raise http.client.RemoteDisconnected(closing) from None
                raise http.client.IncompleteRead(b"", None) from None  # within the body
            if event is h11.NEED_DATA:
                chunk = sock.recv(_READ_SIZE)
                if not chunk:
                    if not heard:
                        if reused:
                            raise StaleConnection("the receiver had closed the kept connection")
                        raise http.client.RemoteDisconnected("the receiver closed the connection")
                    closed = True
                heard = True
                protocol.receive_data(chunk)  # b"": the receiver closed its side
            elif isinstance(event, h11.Response):
                status = event.status_code
                declared = dict(event.headers).get(b"content-length")
                if declared is not None and int(declared) > MAX_ANSWER_BYTES:
                    return status, False  # beyond the answer limit: close, do not read it
            elif isinstance(event, h11.Data):
                body_bytes += len(event.data)
                if body_bytes > MAX_ANSWER_BYTES and status is not None:
                    return status, False  # beyond the answer limit: close, do not read on
            elif isinstance(event, h11.EndOfMessage) and status is not None:
                # Reusable only when both sides may go on (h11 knows Connection:
                # close and HTTP/1.0) and the receiver has not closed its side.
                reusable = (
                    not closed
                    and protocol.our_state is h11.DONE
                    and protocol.their_state is h11.DONE
                )
                if reusable:
                    protocol.start_next_cycle()
                return status, reusable
            elif isinstance(event, h11.ConnectionClosed):
                raise http.client.RemoteDisconnected("the receiver closed the connection")
            # h11.InformationalResponse (100 Continue): the real answer follows.


class _Kept:
    def __init__(self, connection: _Connection) -> None:
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

    def _connection(self, target: Target) -> tuple[_Connection, bool]:
        """A connection to the target's checked address, and whether it is reused."""
        kept = self._kept()
        key = (target.scheme, target.host, target.port, target.address)
        found = kept.pop(key, None)
        if found is not None:
            if time.monotonic() - found.idle_since <= IDLE_REUSE_SECONDS:
                return found.connection, True
            found.connection.close()
        return _Connection(target, self.timeout, self._tls), False

    def _keep(self, target: Target, connection: _Connection) -> None:
        kept = self._kept()
        kept[(target.scheme, target.host, target.port, target.address)] = _Kept(connection)
        while len(kept) > CONNECTIONS_PER_THREAD:
            _key, oldest = kept.popitem(last=False)
            oldest.connection.close()

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> AttemptOutcome:
        started = time.monotonic()
        if _UNSAFE_PATH.search(target.path):
            reason = "the URL's path holds a space or control character"
            return AttemptOutcome(False, None, 0, reason)
        connection, reused = self._connection(target)
        try:
            head = self._headers(connection, body, headers)
            try:
                code, reusable = connection.exchange(head, body, reused=reused)
            except _STALE:
                if not reused:
                    raise
                connection.close()  # the receiver had closed it: once more, on a new one
                connection, reused = self._connection(target)
                code, reusable = connection.exchange(head, body, reused=reused)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            latency = int((time.monotonic() - started) * 1000)
            return AttemptOutcome(False, None, latency, f"{type(error).__name__}: {error}"[:300])
        if reusable:
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
    def _headers(
        connection: _Connection, body: bytes, headers: dict[str, str]
    ) -> list[tuple[bytes, bytes]]:
        return [
            (b"Host", connection.host),
            (b"Accept-Encoding", b"identity"),
            (b"Content-Length", str(len(body)).encode("ascii")),
            (b"Content-Type", b"application/json"),
            (b"User-Agent", USER_AGENT.encode("ascii")),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()),
        ]

    def close(self) -> None:
        """Close this thread's kept connections."""
        for kept in self._kept().values():
            kept.connection.close()
        self._kept().clear()
