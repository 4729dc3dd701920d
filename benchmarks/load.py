"""HTTP load generation: wrk when it is installed, else a small Python client.

The Python client (``python_client``) is what CI and a fresh clone use: a
few processes, each with threads that loop ``GET`` over ``http.client``
connections (kept alive when the server allows it; gunicorn's sync workers
close after each answer and the client reconnects, like wrk does). It is
heavier than wrk, so on a small machine it takes CPU from the server: its
absolute figures are lower, and both the service and the bare baseline are
measured with the same client, so the ratio stays comparable. Every answer's
status is checked; any non-200 fails the benchmark.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

CLIENT_PROCESSES = 2


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    tool: str

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def generate_load(
    url: str, headers: dict[str, str], seconds: float, connections: int, *, tool: str = ""
) -> LoadResult:
    """``tool``: "wrk", "python" or "auto" (default: ``BENCH_LOAD_TOOL``, else auto)."""
    tool = tool or os.environ.get("BENCH_LOAD_TOOL", "auto")
    if tool == "wrk" or (tool == "auto" and wrk_available()):
        return _wrk(url, headers, seconds, connections)
    return python_client(url, headers, seconds, connections)


def _wrk(url: str, headers: dict[str, str], seconds: float, connections: int) -> LoadResult:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    completed = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    )
    output = completed.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    if total is None:
        msg = f"cannot read wrk's output:\n{output}"
        raise RuntimeError(msg)
    elapsed = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return LoadResult(int(total.group(1)), elapsed, errors, "wrk")


def python_client(
    url: str, headers: dict[str, str], seconds: float, connections: int
) -> LoadResult:
    processes = max(1, min(CLIENT_PROCESSES, connections))
    threads = max(1, connections // processes)
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        outcomes = pool.starmap(_client_process, [(url, headers, seconds, threads)] * processes)
    requests = sum(o[0] for o in outcomes)
    errors = sum(o[1] for o in outcomes)
    elapsed = max(o[2] for o in outcomes)
    return LoadResult(requests, elapsed, errors, "python")


def _client_process(
    url: str, headers: dict[str, str], seconds: float, threads: int
) -> tuple[int, int, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    counts = [[0, 0] for _ in range(threads)]
    started = time.perf_counter()
    deadline = started + seconds

    def loop(slot: list[int]) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        while time.perf_counter() < deadline:
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    slot[0] += 1
                else:
                    slot[1] += 1
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException):
                slot[1] += 1
                connection.close()
        connection.close()

    workers = [threading.Thread(target=loop, args=(slot,)) for slot in counts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed
