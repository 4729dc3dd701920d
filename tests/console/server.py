"""A real server for the browser tests: ``suitesub serve`` (gunicorn, 2 workers) on a
fresh SQLite file, with the test clock pinned at T0 and its log kept for the PAN search."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interface.auth import mint_token

SUITESUB = Path(sys.executable).parent / "suitesub"
START_TIMEOUT_SECONDS = 30
T0 = "2026-11-26T09:00:00+00:00"
SECRET = "console-browser-secret-" + "y" * 32


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningServer:
    base_url: str
    database: Path
    log: Path
    var_dir: Path
    environment: dict[str, str]

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """The HTTP API, as the operator unless another token is given."""
        token = token or mint_token(SECRET, user_id="ops-1", operator=True)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=15) as answer:
            return json.loads(answer.read())

    def suitesub(self, *arguments: str) -> str:
        """Run a ``suitesub`` command (as the worker would) on the server's store and
        shifted test clock; its output, which the PAN search reads too."""
        done = subprocess.run(
            [str(SUITESUB), *arguments],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        with self.commands_log.open("a") as log:  # beside the server's own log
            log.write(done.stdout + done.stderr)
        return done.stdout

    @property
    def commands_log(self) -> Path:
        return self.log.with_name("suitesub-commands.log")

    def stored_bytes(self) -> bytes:
        """Everything the server wrote: the database (and its WAL), the logs, var/."""
        written = b""
        for path in [*self.database.parent.glob(self.database.name + "*"), self.log]:
            written += path.read_bytes()
        if self.commands_log.exists():
            written += self.commands_log.read_bytes()
        for path in self.var_dir.rglob("*"):
            if path.is_file():
                written += path.read_bytes()
        return written


@contextmanager
def running_server(
    directory: Path, environment: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    database = directory / "suite.sqlite3"
    log = directory / "server.log"
    var_dir = directory / "var"
    port = _free_port()
    env = {
        **os.environ,
        "SUITE_DATABASE_URL": f"sqlite:///{database}",
        "SUITE_JWT_SECRET": SECRET,
        "SUITE_VAR_DIR": str(var_dir),
        "SUITE_TEST_CLOCK": "1",
        "SUITE_TEST_CLOCK_START": T0,
        "SUITE_WEBHOOKS_ALLOW_PRIVATE": "1",  # the story's receiver listens on 127.0.0.1
    }
    env.pop("SUITE_ENV", None)
    env.update(environment or {})
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(SUITESUB), "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        server = RunningServer(f"http://127.0.0.1:{port}", database, log, var_dir, env)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            while True:
                try:
                    with urllib.request.urlopen(server.base_url + "/readyz", timeout=2):
                        break
                except (OSError, urllib.error.URLError):
                    pass
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)  # polling a starting server, not waiting for a projection
            # Pinned whatever the day: the log is empty, so any instant may be set.
            server.call("POST", "/v1/test-clock", {"set_to": T0})
            server.call("POST", "/v1/test-clock", {"frozen": True})
            yield server
        finally:
            process.terminate()
            process.wait(timeout=15)
