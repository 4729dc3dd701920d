"""What a real ``suitesub serve`` answers to requests gunicorn itself refuses, and
to bodies only a real server delivers (chunked): always the JSON error shape.

Raw sockets, so nothing between the test and gunicorn tidies the request up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interface.auth import mint_token
from tests.conftest import T0
from tests.interface.conftest import SECRET

pytestmark = pytest.mark.slow
SUITESUB = Path(sys.executable).parent / "suitesub"
START_TIMEOUT_SECONDS = 20
OPERATOR = mint_token(SECRET, user_id="ops-1", operator=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (gunicorn closes after an error)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        # gunicorn may answer and close before it read everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        received = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            head, _, rest = received.partition(b"\r\n\r\n")
            length = _content_length(head)
            if length is not None and len(rest) >= length:
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def _json_error(answer: tuple[int, dict[str, str], bytes]) -> dict[str, Any]:
    _, headers, body = answer
    assert headers["content-type"].startswith("application/json"), (headers, body[:200])
    document = json.loads(body)
    assert set(document["error"]) == {"code", "message", "details", "request_id"}
    error: dict[str, Any] = document["error"]
    return error


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("gunicorn-edges")
    chosen = _free_port()
    env = {
        **os.environ,
        "SUITE_DATABASE_URL": f"sqlite:///{directory / 'suite.sqlite3'}",
        "SUITE_JWT_SECRET": SECRET,
        "SUITE_VAR_DIR": str(directory / "var"),
        "SUITE_TEST_CLOCK": "1",
        "SUITE_TEST_CLOCK_START": T0.isoformat(),
    }
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(
        [str(SUITESUB), "serve", "--port", str(chosen), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"suitesub serve exited: {(directory / 'server.log').read_text()}")
            try:
                status, _, _ = _exchange(chosen, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("suitesub serve did not answer in time")
            time.sleep(0.1)
        yield chosen
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_a_request_line_too_long_is_a_json_414(port: int) -> None:
    answer = _exchange(
        port, b"GET /v1/organizations?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )

    assert answer[0] == 414
    assert _json_error(answer)["code"] == "uri_too_long"


def test_a_header_field_too_large_is_a_json_431(port: int) -> None:
    answer = _exchange(
        port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
    )

    assert answer[0] == 431
    assert _json_error(answer)["code"] == "request_header_fields_too_large"


def test_too_many_header_fields_is_a_json_431(port: int) -> None:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")

    assert answer[0] == 431
    assert _json_error(answer)["code"] == "request_header_fields_too_large"


def test_an_invalid_header_is_a_json_400(port: int) -> None:
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n")

    assert answer[0] == 400
    assert _json_error(answer)["code"] == "bad_request"


def test_a_control_character_in_a_header_value_is_a_json_400(port: int) -> None:
    answer = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\x00b\r\n\r\n")

    assert answer[0] == 400
    assert _json_error(answer)["code"] == "bad_request"


def test_a_malformed_request_line_is_a_json_400(port: int) -> None:
    answer = _exchange(port, b"GET\r\n\r\n")

    assert answer[0] == 400
    assert _json_error(answer)["code"] == "bad_request"


def test_the_refusal_never_repeats_the_request_line(port: int) -> None:
    secret_query = b"q=" + b"4242424242424242" * 600
    answer = _exchange(port, b"GET /v1/x?" + secret_query + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    assert answer[0] == 414
    assert b"4242" not in answer[2]


def _chunked(body: bytes, chunk: int = 8192) -> bytes:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return encoded + b"0\r\n\r\n"


def _post_chunked(port: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    head = (
        b"POST /v1/organizations HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + OPERATOR.encode() + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return _exchange(port, head + _chunked(body))


def test_a_chunked_body_over_64_kib_is_a_json_413(port: int) -> None:
    padding = "x" * (70 * 1024)
    body = json.dumps({"name": "Acme", "country": "JP", "owner_user_id": "u", "pad": padding})

    answer = _post_chunked(port, body.encode())

    assert answer[0] == 413
    assert _json_error(answer)["code"] == "request_too_large"


def test_a_chunked_body_within_the_limit_is_read_whole(port: int) -> None:
    body = json.dumps({"name": "Acme KK", "country": "JP", "owner_user_id": "u-owner"})

    status, _, answer = _post_chunked(port, body.encode())

    assert status == 201, answer
    assert json.loads(answer)["name"] == "Acme KK"
