"""Run one measured job in this (child) process and report its own figures.

``python -m benchmarks.timed_child OUTPUT.json suitesub ARG...`` runs the
``suitesub`` command in-process (``interface.cli.main``);
``python -m benchmarks.timed_child OUTPUT.json raw-log URL`` reads and
decodes the whole log (benchmarks.raw_log). Either way the child writes
``{"seconds", "exit_code", "peak_rss_mb"}``: seconds from just before the
work to just after it, so interpreter start-up and imports — a constant, not
a rate — stay out of events per second; peak RSS is the child's high-water
mark (VmHWM), imports included.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    output, job, *arguments = argv
    if job == "suitesub":
        from interface.cli import main as suitesub

        def work() -> int:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                try:
                    outcome = suitesub.main(arguments, standalone_mode=False)
                except SystemExit as stop:
                    return int(stop.code or 0)
            return outcome if isinstance(outcome, int) else 0
    elif job == "raw-log":
        from application.service import SuiteSubscriptions
        from benchmarks.organizations import T0
        from benchmarks.raw_log import read_and_decode
        from domain.clock import ManualClock

        def work() -> int:
            [url] = arguments
            app = SuiteSubscriptions.from_database_url(url, clock=ManualClock(T0))
            try:
                read_and_decode(app)
            finally:
                app.close()
            return 0
    else:
        msg = f"unknown job {job!r}"
        raise SystemExit(msg)

    started = time.perf_counter()
    exit_code = work()
    seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    report = {"seconds": seconds, "exit_code": exit_code, "peak_rss_mb": peak_mb}
    Path(output).write_text(json.dumps(report))
    return exit_code


def peak_rss_mb() -> float:
    """This process's own high-water mark (``VmHWM``).

    ``ru_maxrss`` survives exec on Linux, so a child started by a big parent
    would report the parent's peak; ``VmHWM`` belongs to the new image only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
