"""audit_verify: events per second of ``suitesub audit verify``, and its peak memory.

Both sides run in their own process on the same generated log (the way an
auditor runs the tool): ``suitesub audit verify`` against a raw read of every
notification and its decoding, nothing else (benchmarks.raw_log). Each child
times its own work (benchmarks.timed_child), so interpreter start-up and
imports — a constant, not a rate — stay out of events per second; the whole
process time is kept in the details. Peak RSS is the child's high-water mark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO_ROOT, BenchmarkResult, Profile, ratio
from benchmarks.log_builder import log_in_store
from benchmarks.stores import scratch_dir, store

NAME = "audit_verify"
TARGET = ">= 0.65"  # issue 10 (was >= 0.5)
RSS_TARGET = "< 300"


def run(profile: Profile, store_kind: str = "sqlite") -> list[BenchmarkResult]:
    with store(store_kind, NAME) as url, scratch_dir(NAME) as scratch:
        events = log_in_store(profile.log_events, store_kind, url)
        environment = {"SUITE_DATABASE_URL": url, "SUITE_VAR_DIR": str(scratch)}
        verify_job = ["suitesub", "audit", "verify", "--quiet", "--format", "json"]
        verify: ChildRun | None = None
        raw: ChildRun | None = None
        for _round in range(1 if profile.log_events >= 500_000 else 2):
            verify = _best(verify, run_child(verify_job, environment, scratch))
            raw = _best(raw, run_child(["raw-log", url], environment, scratch))
    assert verify is not None
    assert raw is not None
    value, baseline = events / verify.seconds, events / raw.seconds
    suffix = "" if store_kind == "sqlite" else f"_{store_kind}"
    details = {
        "events": events,
        "verify_seconds": round(verify.seconds, 2),
        "raw_seconds": round(raw.seconds, 2),
        "verify_process_seconds": round(verify.wall_seconds, 2),
        "raw_process_seconds": round(raw.wall_seconds, 2),
    }
    return [
        BenchmarkResult(
            name=NAME + suffix,
            value=value,
            unit="events/s",
            baseline=baseline,
            ratio=ratio(value, baseline),
            target=TARGET,
            store=store_kind,
            details=details,
        ),
        BenchmarkResult(
            name=f"{NAME}_peak_rss{suffix}",
            value=verify.peak_rss_mb,
            unit="MB",
            baseline=None,
            ratio=None,
            target=RSS_TARGET,
            store=store_kind,
            details={"events": events, "raw_read_peak_rss_mb": round(raw.peak_rss_mb, 1),
                     "note": "the < 300 MB target is set for 1 000 000 events (make bench)"},
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class ChildRun:
    seconds: float  # the work itself, measured inside the child
    wall_seconds: float  # the whole process, start-up included
    peak_rss_mb: float


def run_child(job: list[str], environment: dict[str, str], scratch: Path) -> ChildRun:
    """Run ``benchmarks.timed_child`` in its own process; it must exit 0."""
    report_path = scratch / "child.json"
    log_path = scratch / "child.log"
    command = [sys.executable, "-m", "benchmarks.timed_child", str(report_path), *job]
    started = time.perf_counter()
    with log_path.open("wb") as log:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env={**os.environ, **environment}, stdout=log,
            stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    wall_seconds = time.perf_counter() - started
    if completed.returncode != 0:
        msg = f"{' '.join(job[:4])} exited {completed.returncode}:\n{log_path.read_text()[-2000:]}"
        raise RuntimeError(msg)
    report = json.loads(report_path.read_text())
    return ChildRun(report["seconds"], wall_seconds, report["peak_rss_mb"])


def _best(current: ChildRun | None, new: ChildRun) -> ChildRun:
    """The fastest run, with the highest peak memory seen in any run."""
    if current is None:
        return new
    fastest = current if current.seconds <= new.seconds else new
    return ChildRun(
        fastest.seconds, fastest.wall_seconds, max(current.peak_rss_mb, new.peak_rss_mb)
    )
