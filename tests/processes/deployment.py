"""Real processes for the many-process tests: the API under gunicorn, workers.

Waits are on answers and positions (``/healthz``, ``/readyz`` view lag),
never on fixed sleeps.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from application.bootstrap import Services, build_services
from interface.auth import mint_token
from tests.conftest import PINNED_START, fresh_postgres_database

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "many-processes-secret-" + "x" * 64
SUITESUB = str(Path(sys.executable).with_name("suitesub"))
START_TIMEOUT = 30.0
CATCH_UP_TIMEOUT = 30.0
OPERATOR = mint_token(SECRET, user_id="ops-1", operator=True)


@contextmanager
def pinned_store(monkeypatch: pytest.MonkeyPatch, purpose: str) -> Iterator[tuple[str, Services]]:
    """A fresh PostgreSQL database and this process's services on it, on the
    test clock pinned at PINNED_START — the clock the processes under test share."""
    monkeypatch.setenv("SUITE_TEST_CLOCK", "1")
    monkeypatch.setenv("SUITE_TEST_CLOCK_START", PINNED_START)
    with fresh_postgres_database(purpose) as url:
        services = build_services(url, test_clock=True)
        try:
            yield url, services
        finally:
            services.close()


def pinned_environment(url: str) -> dict[str, str]:
    """The environment of a process started on ``url`` and the shared test clock."""
    return {
        **os.environ,
        "SUITE_DATABASE_URL": url,
        "SUITE_TEST_CLOCK": "1",
        "SUITE_TEST_CLOCK_START": PINNED_START,
    }


def user(organization_id: str, user_id: str = "u-alice") -> str:
    return mint_token(SECRET, user_id=user_id, organization_id=organization_id)


def at_once(count: int, act: Callable[[int], Any]) -> list[Any]:
    """Run ``act(i)`` in ``count`` threads released together."""
    barrier = threading.Barrier(count)
    answers: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        answers[index] = act(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Deployment:
    """The API under gunicorn and one or more workers, on one database."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.database_url = database_url
        self.logs = logs
        self.port = _free_port()
        self.base = f"127.0.0.1:{self.port}"
        self.environment = {
            **os.environ,
            "SUITE_DATABASE_URL": database_url,
            "SUITE_JWT_SECRET": SECRET,
            "SUITE_TEST_CLOCK": "1",
            # Pinned: the stories give the same answers on every day they are run.
            "SUITE_TEST_CLOCK_START": PINNED_START,
            # A loaded 2-core machine may take the worker more than the default
            # 2 s to catch up: these tests are about answers, not latency.
            "SUITE_MIN_POSITION_TIMEOUT": "15",
            "SUITE_VAR_DIR": str(logs),
        }
        # Each store's default: the API follows the log on SQLite, a worker on PostgreSQL.
        self.environment.pop("SUITE_VIEW_FOLLOWER", None)
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._log_files: list[Any] = []

    def _spawn(
        self, command: list[str], log_name: str, environment: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.logs / log_name).open("ab")
        self._log_files.append(log)
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**self.environment, **(environment or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_api(self, workers: int = 4) -> None:
        self.api = self._spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "wsgi:app",
                "--workers",
                str(workers),
                # As docs/operations.md's gunicorn.conf.py: gunicorn's own refusals in JSON.
                "--worker-class",
                "interface.gunicorn_worker.JsonErrorWorker",
                "--bind",
                self.base,
                "--log-level",
                "warning",
                "--no-control-socket",
            ],
            "api.log",
        )
        self._wait_until_answering()

    def start_serve(self, workers: int = 2) -> None:
        """The API as ``suitesub serve`` runs it (its gunicorn settings, its access log)."""
        host, port = self.base.split(":")
        self.api = self._spawn(
            [SUITESUB, "serve", "--host", host, "--port", port, "--workers", str(workers)],
            "api.log",
        )
        self._wait_until_answering()

    def _wait_until_answering(self) -> None:
        assert self.api is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                pytest.fail(f"gunicorn exited: {(self.logs / 'api.log').read_text()[-3000:]}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("gunicorn did not answer in time")

    def start_worker(
        self, *arguments: str, environment: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """``suitesub worker`` (``environment``: variables added to the deployment's)."""
        worker = self._spawn(
            [SUITESUB, "worker", "--poll-interval", "0.2", "--sweep-interval", "0.5", *arguments],
            "worker.log",
            environment,
        )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for process in [*self.workers, *([self.api] if self.api else [])]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for log in self._log_files:
            log.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | dict[str, bytes] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        connection = http.client.HTTPConnection(self.base, timeout=30)
        sent: dict[str, str | bytes] = {**(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body)
            sent["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, dict(response.headers)
        finally:
            connection.close()

    def register(self, name: str) -> str:
        """Register an organization (as the operator); its id."""
        status, body, _ = self.call(
            "POST",
            "/v1/organizations",
            token=OPERATOR,
            body={"name": name, "country": "JP", "owner_user_id": "u-owner"},
        )
        assert status == 201, body
        organization_id: str = body["id"]
        return organization_id

    def wait_until_views_caught_up(self, at_least: int | None = None) -> dict[str, int]:
        """Poll /readyz until the views have applied the log (or ``at_least``)."""
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while time.monotonic() < deadline:
            views = self.call("GET", "/readyz")[1]["views"]
            target = views["latest_position"] if at_least is None else at_least
            if views["view_position"] >= target:
                return dict(views)
            time.sleep(0.05)
        pytest.fail(f"the views did not catch up: {views}")
