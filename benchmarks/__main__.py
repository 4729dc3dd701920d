"""``python -m benchmarks [--quick] [--only NAME ...]``: run, print, write results.json.

Exits 1 when a figure misses its target, 2 when a benchmark failed to run.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from benchmarks.harness import PROFILES, RESULTS_PATH, machine_info, render_table, write_results
from benchmarks.registry import BENCHMARKS, run_benchmark
from benchmarks.stores import postgres_available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="tiny, quick or full")
    parser.add_argument("--only", nargs="*", default=[], help="benchmark names to run")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL variants")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)

    profile = PROFILES[args.profile or ("quick" if args.quick else "full")]
    stores = ["sqlite"]
    if not args.no_postgres and postgres_available():
        stores.append("postgres")
    selected = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    unknown = set(args.only) - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    results = []
    failures = 0
    for benchmark in selected:
        for store_kind in [s for s in stores if s in benchmark.stores]:
            label = f"{benchmark.name} [{store_kind}]"
            print(f"… {label}", file=sys.stderr, flush=True)
            try:
                benchmark_started = time.perf_counter()
                results.extend(run_benchmark(benchmark, profile, store_kind))
                took = time.perf_counter() - benchmark_started
                print(f"  {label}: {took:.1f} s", file=sys.stderr, flush=True)
            except Exception:
                failures += 1
                print(f"FAILED {label}:\n{traceback.format_exc()}", file=sys.stderr)
    seconds = time.perf_counter() - started

    write_results(args.output, machine_info(), profile, results)
    render_table(results, profile, seconds)
    print(f"results: {args.output}")
    if failures:
        return 2
    return 0 if all(result.met is not False for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
