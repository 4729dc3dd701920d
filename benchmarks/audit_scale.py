"""Peak memory and time of ``suitesub audit verify`` and ``export`` on a large log.

Each command runs in its own process (as an auditor would run it), against a
copy of a generated log (benchmarks.log_builder), and reports its own peak
resident set size. The figure is recorded in docs/audit.md; the tests make
no timing or memory assertions.

    python -m benchmarks.audit_scale --events 1000000 [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import REPO_ROOT
from benchmarks.log_builder import cached_sqlite_log, log_in_store

COMMANDS = {
    "verify": ["audit", "verify", "--format", "json", "--quiet"],
    "digest": ["audit", "digest", "--quiet"],
    "export": ["audit", "export", "--quiet"],
}


def _child(command: str) -> int:
    """Run one audit command in this process; report time and peak RSS on stderr."""
    from interface.cli import main

    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        stdout, sys.stdout = sys.stdout, devnull
        try:
            outcome = main.main(COMMANDS[command], standalone_mode=False)
            code = outcome if isinstance(outcome, int) else 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        finally:
            sys.stdout = stdout
    seconds = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    print(
        json.dumps(
            {
                "command": command,
                "exit": code,
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(peak_mb, 1),
            }
        ),
        file=sys.stderr,
    )
    return code


def _peak_rss_mb() -> float:
    """This process's own high-water mark (``ru_maxrss`` would include the parent's at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, command: str) -> dict[str, object]:
    environment = {**os.environ, "SUITE_DATABASE_URL": url}
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.audit_scale", "--child", command],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, object] = json.loads(finished.stderr.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a SQLite copy)")
    parser.add_argument("--child", choices=sorted(COMMANDS), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        return _child(arguments.child)

    with tempfile.TemporaryDirectory() as scratch:
        if arguments.url:
            url = arguments.url
            events = log_in_store(arguments.events, "postgres", url)
        else:
            target = Path(scratch) / "audit.sqlite3"
            shutil.copyfile(cached_sqlite_log(arguments.events), target)
            url = f"sqlite:///{target}"
            events = arguments.events
        results = [measure(url, command) for command in ("verify", "digest", "export")]
    print(json.dumps({"events": events, "store": url.split(":")[0], "results": results}, indent=2))
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
