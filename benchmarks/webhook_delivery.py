"""webhook_delivery: signed deliveries per second, and commit→delivery delay.

Receiver: a small HTTP/1.1 server in its own process on 127.0.0.1 (keep-alive,
a listen backlog of 128 as real servers have; answers 204, writes each
arrival's ``webhook-id`` and wall time to a file).

1. ``webhook_delivery`` — subject: the whole webhook path for N recorded
   ``trial.started`` events of N organizations (their set-up's events are
   followed before the clock starts): the integration log follows the log,
   fans out to the endpoint, the dispatcher claims, signs
   (standardwebhooks) and POSTs each, recording every outcome in the
   database. Baseline (measured right after): a bare loop that signs the same N
   envelopes with ``standardwebhooks`` and POSTs them to the same receiver on
   one kept-alive connection (the dispatcher keeps its connections alive too).
   Target: subject ÷ baseline ≥ 0.5. Rounds (the profile's) alternate the two
   on fresh stores; the best of each counts (``details.rounds`` has them all).
2. ``webhook_delivery_delay`` — commands (``start_trial``) issued at 100 per
   second while the webhooks run as in production (their own thread,
   following the log); the delay of each from the command's return to the
   receiver's arrival; the figure is the p99, target < 1 s.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

from application.bootstrap import Services, build_services
from application.catalog_loader import default_catalog
from application.settings import ViewSettings
from application.webhooks.signing import new_secret, signed_headers
from benchmarks.harness import REPO_ROOT, BenchmarkResult, Profile, ratio
from benchmarks.organizations import SUPER_ADMIN, T0, registered_with_crm, save_all
from benchmarks.stores import scratch_dir, store
from domain.clock import ManualClock

NAME = "webhook_delivery"
DELAY_NAME = "webhook_delivery_delay"
TARGET = ">= 0.5"
DELAY_TARGET = "< 1.0"
COMMANDS_PER_SECOND = 100


def run(profile: Profile, store_kind: str = "sqlite") -> list[BenchmarkResult]:
    deliveries = max(20, min(profile.commands, 2000))
    delay_seconds = max(0.5, profile.command_seconds)
    suffix = "" if store_kind == "sqlite" else f"_{store_kind}"
    with scratch_dir(NAME) as directory:
        log = directory / "arrivals.log"
        port, receiver = _start_receiver(log)
        try:
            # Rounds alternate subject and baseline; the best of each counts.
            rounds = [
                _throughput(store_kind, port, log, deliveries)
                for _round in range(max(1, profile.rounds))
            ]
            throughput = (max(r[0] for r in rounds), max(r[1] for r in rounds))
            delays = _delays(store_kind, port, log, delay_seconds)
        finally:
            receiver.kill()
            receiver.wait()
    value, base = throughput
    p99 = _percentile(delays, 0.99)
    return [
        BenchmarkResult(
            name=f"{NAME}{suffix}",
            value=value,
            unit="deliveries/s",
            baseline=base,
            ratio=ratio(value, base),
            target=TARGET,
            store=store_kind,
            details={
                "deliveries": deliveries,
                "rounds": [
                    {"deliveries_per_s": round(v, 1), "baseline_per_s": round(b, 1)}
                    for v, b in rounds
                ],
            },
        ),
        BenchmarkResult(
            name=f"{DELAY_NAME}{suffix}",
            value=p99,
            unit="s (p99)",
            baseline=None,
            ratio=None,
            target=DELAY_TARGET,
            store=store_kind,
            details={
                "commands": len(delays),
                "commands_per_second": COMMANDS_PER_SECOND,
                "p50": _percentile(delays, 0.5),
                "max": max(delays),
            },
        ),
    ]


def _services(url: str) -> Services:
    os.environ["SUITE_WEBHOOKS_ALLOW_PRIVATE"] = "1"
    return build_services(
        url,
        clock=ManualClock(T0),
        catalog=default_catalog(),
        view_settings=ViewSettings(follow_on_read=True, min_position_timeout=2.0),
    )


def _organizations(services: Services, count: int) -> list[UUID]:
    catalog = services.catalog
    return save_all(services.app, (registered_with_crm(catalog) for _ in range(count)))


def _throughput(store_kind: str, port: int, log: Path, count: int) -> tuple[float, float]:
    with store(store_kind, NAME) as url:
        services = _services(url)
        try:
            url_of_receiver = f"http://127.0.0.1:{port}/hooks"
            services.webhooks.endpoints.create(
                url=url_of_receiver, events=["trial.started"], description="bench"
            )
            organizations = _organizations(services, count)
            services.webhooks.integration.catch_up()  # the set-up's events are not measured
            for organization_id in organizations:
                services.app.start_trial(organization_id, by=SUPER_ADMIN)
            arrived = _arrivals(log)
            started = time.perf_counter()
            stop = threading.Event()
            runner = threading.Thread(target=services.webhooks.run, args=(stop,))
            runner.start()
            try:
                _wait_for(log, len(arrived) + count)
                subject_seconds = time.perf_counter() - started
            finally:
                stop.set()
                runner.join()
            baseline = _bare_loop(port, _envelopes(services))
        finally:
            services.close()
    return count / subject_seconds, count / baseline


def _envelopes(services: Services) -> list[tuple[str, str]]:
    """The envelopes the subject delivered, as the bodies it sent."""
    integration = services.webhooks.integration
    found: list[tuple[str, str]] = []
    after: int | None = 0
    while after is not None:
        page = integration.page(after=after, types=("trial.started",), limit=500)
        found.extend(
            (e["id"], json.dumps(e, ensure_ascii=False, separators=(",", ":")))
            for e in page["events"]
        )
        after = page["next"]
    return found


def _bare_loop(port: int, envelopes: list[tuple[str, str]]) -> float:
    """Sign each envelope and POST it, one after another, on one kept-alive
    connection (the least a sender can do; the receiver speaks HTTP/1.1)."""
    secret = new_secret()
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for event_id, body in envelopes:
        headers = signed_headers([secret], f"bare_{event_id}", datetime.now(tz=UTC), body)
        connection.request(
            "POST",
            "/hooks",
            body=body.encode(),
            headers={**headers, "content-type": "application/json"},
        )
        connection.getresponse().read()
    connection.close()
    return time.perf_counter() - started


def _delays(store_kind: str, port: int, log: Path, seconds: float) -> list[float]:
    count = max(10, int(seconds * COMMANDS_PER_SECOND))
    with store(store_kind, DELAY_NAME) as url:
        services = _services(url)
        try:
            services.webhooks.endpoints.create(
                url=f"http://127.0.0.1:{port}/hooks", events=["trial.started"], description="bench"
            )
            organizations = _organizations(services, count)
            services.webhooks.integration.catch_up()  # the set-up's events are not measured
            stop = threading.Event()
            runner = threading.Thread(target=services.webhooks.run, args=(stop,))
            runner.start()
            committed: dict[str, float] = {}
            before = len(_arrivals(log))
            try:
                started = time.perf_counter()
                for index, organization_id in enumerate(organizations):
                    pause = started + index / COMMANDS_PER_SECOND - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    result = services.app.start_trial(organization_id, by=SUPER_ADMIN)
                    committed[str(result.position)] = time.time()
                _wait_for(log, before + count)
            finally:
                stop.set()
                runner.join()
        finally:
            services.close()
    delays = []
    for _event_id, position, arrived in _arrivals(log)[before:]:
        if position in committed:
            delays.append(arrived - committed[position])
    return delays


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _arrivals(log: Path) -> list[tuple[str, str, float]]:
    if not log.exists():
        return []
    found = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            found.append((parts[0], parts[1], float(parts[2])))
    return found


def _wait_for(log: Path, count: int, timeout: float = 120.0) -> None:
    """Wait until the receiver's log holds ``count`` arrivals.

    The probe reads only what was appended since its last look (the whole
    file each time would take CPU from the subject it measures).
    """
    deadline = time.monotonic() + timeout
    seen = 0
    with log.open("rb") as arrivals:
        while True:
            seen += arrivals.read().count(b"\n")
            if seen >= count:
                return
            if time.monotonic() > deadline:
                msg = f"the receiver got {seen} of {count} deliveries"
                raise RuntimeError(msg)
            time.sleep(0.005)


def _start_receiver(log: Path) -> tuple[int, subprocess.Popen[bytes]]:
    ready = log.with_suffix(".port")
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.webhook_delivery", str(log)],
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + 20
    while not ready.exists() or not ready.read_text().strip():
        if time.monotonic() > deadline:
            process.kill()
            msg = "the benchmark receiver did not start"
            raise RuntimeError(msg)
        time.sleep(0.02)
    return int(ready.read_text()), process


def _serve(log: Path) -> None:
    """The receiver: 204 for every POST; one line per arrival (id, position, time)."""

    out = log.open("a", buffering=1)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            arrived = time.time()
            position = json.loads(body).get("position", 0)
            with lock:
                out.write(f"{self.headers.get('webhook-id')} {position} {arrived}\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # a real server's listen backlog (socketserver's is 5)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    log.with_suffix(".port").write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
