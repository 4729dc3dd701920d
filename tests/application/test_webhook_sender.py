"""The webhook sender's HTTP/1.1 client (h11 over its own socket) against a
scripted receiver on 127.0.0.1:
every framing of an answer read to its end (or the connection closed), kept
connections reused only when the answer allows it, broken answers failures."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from application.webhooks.sender import MAX_ANSWER_BYTES, HttpSender
from application.webhooks.url_guard import Target

BODY = b'{"id":"evt_1","type":"trial.started"}'
HEADERS = {"webhook-id": "evt_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}


@dataclass
class Scripted:
    """Answers each request with the next of ``answers`` (bytes written as they are)."""

    answers: list[bytes]
    close_after: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest


@contextmanager
def scripted(answers: list[bytes], *, close_after: bool = False) -> Iterator[Scripted]:
    script = Scripted(list(answers), close_after)
    server = socket.create_server(("127.0.0.1", 0))
    script.port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            script.connections += 1
            with conn:
                while script.answers:
                    request = _read_request(conn)
                    if request is None:
                        break
                    script.requests.append(request)
                    conn.sendall(script.answers.pop(0))
                    if script.close_after:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        stop.set()
        thread.join()
        server.close()


def target(port: int, path: str = "/hooks") -> Target:
    return Target("http", "127.0.0.1", port, path, "127.0.0.1")


def test_a_request_carries_the_signed_headers_and_the_body() -> None:
    with scripted([b"HTTP/1.1 204 No Content\r\n\r\n"]) as receiver:
        outcome = HttpSender().post(target(receiver.port), BODY, HEADERS)
    assert outcome.succeeded
    assert outcome.response_code == 204
    head, _, body = receiver.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hooks HTTP/1.1"
    assert f"Host: 127.0.0.1:{receiver.port}".encode() in lines
    assert b"Content-Type: application/json" in lines
    assert f"Content-Length: {len(BODY)}".encode() in lines
    assert b"webhook-signature: v1,x" in lines
    assert body == BODY


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nA: b\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    ],
    ids=["content-length", "chunked", "interim-100"],
)
def test_an_answer_read_to_its_end_leaves_the_connection_for_the_next(answer: bytes) -> None:
    sender = HttpSender()
    with scripted([answer, b"HTTP/1.1 204 No Content\r\n\r\n"]) as receiver:
        first = sender.post(target(receiver.port), BODY, HEADERS)
        second = sender.post(target(receiver.port), BODY, HEADERS)
    assert first.succeeded
    assert second.succeeded
    assert second.response_code == 204
    assert receiver.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        # HTTP/1.0's keep-alive extension is not trusted (h11 does not speak it).
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1),
        b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    ],
    ids=[
        "connection-close",
        "http-1.0",
        "http-1.0-keep-alive",
        "body-over-the-limit",
        "no-framing",
    ],
)
def test_an_answer_that_ends_the_connection_is_not_reused(answer: bytes) -> None:
    sender = HttpSender()
    with scripted([answer, b"HTTP/1.1 204 No Content\r\n\r\n"], close_after=True) as receiver:
        first = sender.post(target(receiver.port), BODY, HEADERS)
        second = sender.post(target(receiver.port), BODY, HEADERS)
    assert first.succeeded
    assert first.response_code == 200
    assert second.succeeded
    assert second.response_code == 204
    assert receiver.connections == 2


def test_a_kept_connection_closed_meanwhile_is_replaced_once() -> None:
    sender = HttpSender()
    # The receiver closes after each answer without saying so.
    with scripted([b"HTTP/1.1 204 No Content\r\n\r\n"] * 2, close_after=True) as receiver:
        first = sender.post(target(receiver.port), BODY, HEADERS)
        second = sender.post(target(receiver.port), BODY, HEADERS)
    assert first.succeeded
    assert second.succeeded
    assert receiver.connections == 2
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SMTP ready\r\n\r\n", "ProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "ProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "IncompleteRead"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "ProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-", "RemoteDisconnected"),
    ],
    ids=["not-http", "bad-length", "short-body", "bad-chunk", "cut-head"],
)
def test_a_broken_answer_is_a_failed_attempt(answer: bytes, error: str) -> None:
    with scripted([answer], close_after=True) as receiver:
        outcome = HttpSender().post(target(receiver.port), BODY, HEADERS)
    assert not outcome.succeeded
    assert outcome.error is not None
    assert outcome.error.startswith(error)


def test_a_redirect_is_a_failure_and_its_location_is_not_visited() -> None:
    moved = b"HTTP/1.1 301 Moved\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    with scripted([moved]) as r:
        outcome = HttpSender().post(target(r.port), BODY, HEADERS)
    assert not outcome.succeeded
    assert outcome.response_code == 301
    assert outcome.error == "redirects are not followed"
    assert len(r.requests) == 1


def test_a_path_or_header_that_would_split_the_request_is_never_sent() -> None:
    with scripted([b"HTTP/1.1 204 No Content\r\n\r\n"]) as receiver:
        sender = HttpSender()
        spaced = sender.post(target(receiver.port, "/a b HTTP/1.1\r\nX: y"), BODY, HEADERS)
        broken = sender.post(target(receiver.port), BODY, {**HEADERS, "webhook-id": "a\r\nX: y"})
    assert not spaced.succeeded
    assert not broken.succeeded
    assert receiver.requests == []


def test_an_answer_slower_than_the_timeout_is_a_failure() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        port = server.getsockname()[1]
        # Accepted by the kernel's backlog and never answered.
        outcome = HttpSender(timeout=0.3).post(target(port), BODY, HEADERS)
    finally:
        server.close()
    assert not outcome.succeeded
    assert outcome.response_code is None
    assert outcome.error is not None
    assert "timed out" in outcome.error
    assert 250 <= outcome.latency_ms < 3000
