"""One HTTP attempt: POST the signed body, 2xx within the timeout is success.

Redirects are never followed (a 3xx is a failure), the connection goes to the
address the URL guard checked (``Target.address``; TLS still verifies the
host name), and the answer's body is read only up to a small limit (a longer
one closes the connection). Connections are kept alive per sending thread and
endpoint address (HTTP/1.1), so a busy endpoint is not paid a TCP (and TLS)
handshake per delivery. The client is this module's own small HTTP/1.1 one
(:class:`_Connection`): a POST and the answer's framing are all delivery needs.
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
    """The receiver's answer is not HTTP/1.x as this client reads it."""


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
    """One HTTP/1.1 connection to a checked address: a request is one
    ``sendall`` of head and body, and the answer is parsed for what delivery
    needs (status, framing, ``Connection``), its body read and dropped.

    Why not ``http.client``: per request it sends the head and the body in two
    writes and parses the answer's headers with the ``email`` package; on the
    webhook_delivery benchmark that was a third of a lane's CPU per delivery.
    """

    def __init__(self, target: Target, timeout: float, tls: ssl.SSLContext) -> None:
        self.target = target
        self.timeout = timeout
        self._tls = tls
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self.host = host_header(target)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()

    def _open(self) -> socket.socket:
        if self._sock is None:
            raw = _connected(self.target.address, self.target.port, self.timeout)
            if self.target.scheme == "https":
                # The checked address is dialled; TLS still verifies the host name.
                self._sock = self._tls.wrap_socket(raw, server_hostname=self.target.host)
            else:
                self._sock = raw
        return self._sock

    def exchange(self, head: bytes, body: bytes, *, reused: bool) -> tuple[int, bool]:
        """Send one request; the answer's status and whether the connection may be reused."""
        sock = self._open()
        sock.sendall(head + body)
        return self._answer(sock, reused=reused)

    def _fill(self, sock: socket.socket) -> bool:
        chunk = sock.recv(_READ_SIZE)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _answer(self, sock: socket.socket, *, reused: bool) -> tuple[int, bool]:
        while True:
            status, version, headers = self._head(sock, reused=reused)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue): the real one follows
            break
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        if status == 101:
            return status, False  # switching protocols: this connection is not HTTP any more
        if status in (204, 304):
            return status, keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, keep and self._drop_chunked(sock)
        length = headers.get("content-length")
        if length is None:
            return status, False  # the body runs until the receiver closes: not reusable
        try:
            size = int(length)
        except ValueError:
            raise ProtocolError(f"bad Content-Length {length[:40]!r}") from None
        if size < 0:
            raise ProtocolError(f"bad Content-Length {length[:40]!r}")
        return status, keep and self._drop(sock, size)

    def _head(self, sock: socket.socket, *, reused: bool) -> tuple[int, str, dict[str, str]]:
        first = True
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("the answer's headers are too long")
            if not self._fill(sock):
                if first and reused and not self._buffer:
                    raise StaleConnection("the receiver had closed the kept connection")
                raise http.client.RemoteDisconnected("the receiver closed the connection")
            first = False
        head = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 4]
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if colon:
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return int(code), version, headers

    def _drop(self, sock: socket.socket, size: int) -> bool:
        """Read and drop ``size`` body bytes; False (close) beyond the answer limit."""
        if size > MAX_ANSWER_BYTES:
            return False
        while len(self._buffer) < size:
            if not self._fill(sock):
                raise http.client.IncompleteRead(bytes(self._buffer), size - len(self._buffer))
        del self._buffer[:size]
        return True

    def _line(self, sock: socket.socket) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES or not self._fill(sock):
                raise ProtocolError("a chunked answer ended early")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _drop_chunked(self, sock: socket.socket) -> bool:
        """Read and drop a chunked body; False (close) beyond the answer limit."""
        total = 0
        while True:
            size_field = self._line(sock).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise ProtocolError("a bad chunk size") from None
            if size == 0:
                while self._line(sock):  # trailers, up to the empty line
                    pass
                return True
            total += size
            if total > MAX_ANSWER_BYTES:
                return False
            if not self._drop(sock, size + 2):  # the chunk and its CRLF
                return False


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
            head = self._head(connection, target, body, headers)
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
    def _head(
        connection: _Connection, target: Target, body: bytes, headers: dict[str, str]
    ) -> bytes:
        lines = [
            f"POST {target.path} HTTP/1.1".encode("ascii"),
            b"Host: " + connection.host,
            b"Accept-Encoding: identity",
            b"Content-Length: " + str(len(body)).encode("ascii"),
            b"Content-Type: application/json",
            b"User-Agent: " + USER_AGENT.encode("ascii"),
        ]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise http.client.InvalidURL(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}".encode("latin-1"))
        lines.append(b"")
        lines.append(b"")
        return b"\r\n".join(lines)

    def close(self) -> None:
        """Close this thread's kept connections."""
        for kept in self._kept().values():
            kept.connection.close()
        self._kept().clear()
