"""Every benchmark, the stores it runs on, and how to call it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import (
    access_read_http,
    aggregate_load_growth,
    audit_verify,
    command_throughput,
    console_page,
    projection_rebuild,
    renewal_sweep,
    webhook_delivery,
)
from benchmarks.harness import BenchmarkResult, Profile


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[Profile, str], BenchmarkResult | list[BenchmarkResult]]
    stores: tuple[str, ...] = ("sqlite", "postgres")


BENCHMARKS: list[Benchmark] = [
    Benchmark(command_throughput.NAME, command_throughput.run),
    Benchmark(access_read_http.NAME, access_read_http.run),
    Benchmark(projection_rebuild.NAME, projection_rebuild.run),
    Benchmark(aggregate_load_growth.NAME, aggregate_load_growth.run),
    # PostgreSQL variants are required of the first three only; this one is long.
    Benchmark(audit_verify.NAME, audit_verify.run, stores=("sqlite",)),
    Benchmark(webhook_delivery.NAME, webhook_delivery.run),
    Benchmark(console_page.NAME, console_page.run, stores=("sqlite",)),
    Benchmark(renewal_sweep.NAME, renewal_sweep.run),
]


def run_benchmark(benchmark: Benchmark, profile: Profile, store_kind: str) -> list[BenchmarkResult]:
    outcome = benchmark.run(profile, store_kind)
    return outcome if isinstance(outcome, list) else [outcome]
