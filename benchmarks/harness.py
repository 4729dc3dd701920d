"""The benchmark harness: profiles (sizes), results, timing, the table and the JSON file.

A benchmark measures the service *and* a baseline that does the least work
the same stack allows (raw library calls on the same store, a bare Flask
endpoint behind the same server), in the same run, on the same machine. The
ratio between the two is the figure that counts: absolute times on shared
machines are noise, ratios are not.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "var" / "bench"
RESULTS_PATH = BENCH_DIR / "results.json"


@dataclass(frozen=True)
class Profile:
    """How big each benchmark runs. ``tiny`` only proves the code still runs."""

    name: str
    commands: int  # start-trial commands at most
    command_seconds: float  # ...or until this much time went into measured commands
    rounds: int  # measured rounds (best one counts), baseline and subject interleaved
    load_repeats: int  # aggregate loads per measured round
    log_events: int  # size of the log for rebuild and verify
    http_seconds: float  # load-generation time per HTTP measurement
    http_connections: int


PROFILES = {
    "tiny": Profile(
        "tiny", commands=10, command_seconds=1.0, rounds=1, load_repeats=5,
        log_events=400, http_seconds=0.3, http_connections=2,
    ),
    "quick": Profile(
        "quick", commands=1000, command_seconds=3.0, rounds=3, load_repeats=200,
        log_events=100_000, http_seconds=3.0, http_connections=8,
    ),
    "full": Profile(
        "full", commands=10_000, command_seconds=30.0, rounds=5, load_repeats=1000,
        log_events=1_000_000, http_seconds=15.0, http_connections=16,
    ),
}  # fmt: skip


@dataclass
class BenchmarkResult:
    """One row of the table and of ``results.json``.

    ``value`` and ``baseline`` share ``unit``; ``ratio`` is value ÷ baseline
    (or, for growth figures, the measured quotient itself) and ``target`` is
    the bound it must meet, written as ``">= 0.5"`` or ``"<= 2.0"``.
    """

    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: str | None
    store: str = "sqlite"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        figure = self.ratio if self.ratio is not None else self.value
        operator, bound_text = self.target.split()
        bound = float(bound_text)
        comparisons: dict[str, Callable[[float, float], bool]] = {
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            "<": lambda a, b: a < b,
            ">": lambda a, b: a > b,
        }
        return comparisons[operator](figure, bound)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["met"] = self.met
        return data


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("inf")


# -- timing -------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    finished: list[float] = []
    yield lambda: (finished[0] if finished else time.perf_counter()) - started
    finished.append(time.perf_counter())


# -- the machine ----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures were measured on; ratios travel, absolute figures don't."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "eventsourcing": _version("eventsourcing"),
        "flask": _version("flask"),
        "gunicorn": _version("gunicorn"),
        "git_commit": _git_commit(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


# -- output -----------------------------------------------------------------------------


def write_results(
    path: Path, machine: dict[str, Any], profile: Profile, results: list[BenchmarkResult]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine,
        "profile": profile.name,
        "benchmarks": [result.to_dict() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _figure(number: float | None) -> str:
    if number is None:
        return "—"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    if abs(number) >= 10:
        return f"{number:,.1f}"
    return f"{number:,.3g}" if abs(number) < 1 else f"{number:,.2f}"


def render_table(results: list[BenchmarkResult], profile: Profile, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Suite Subscriptions benchmarks ({profile.name}, {seconds:.1f} s)")
    table.add_column("benchmark")
    table.add_column("store")
    table.add_column("value", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("unit")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for result in results:
        met = result.met
        mark = "—" if met is None else ("[green]yes[/]" if met else "[red]NO[/]")
        table.add_row(
            result.name,
            result.store,
            _figure(result.value),
            _figure(result.baseline),
            result.unit,
            _figure(result.ratio),
            result.target or "—",
            mark,
        )
    # A wide table even when piped (make, CI logs): names must stay readable.
    Console(width=max(120, Console().width)).print(table)
