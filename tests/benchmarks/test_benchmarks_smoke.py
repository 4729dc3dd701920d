"""Every benchmark still runs, at a tiny size. Benchmarks are not tests:
nothing here looks at a timing, only at the shape of what comes back."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.harness import PROFILES, BenchmarkResult
from benchmarks.registry import BENCHMARKS, run_benchmark
from benchmarks.stores import postgres_available

TINY = PROFILES["tiny"]
#: Benchmarks that start real server processes (gunicorn): `slow`, like the other such tests.
STARTS_SERVERS = {"access_read_http", "console_page"}


def _params(benchmarks: object) -> list[object]:
    return [
        pytest.param(b, marks=pytest.mark.slow) if b.name in STARTS_SERVERS else b  # type: ignore[attr-defined]
        for b in benchmarks  # type: ignore[attr-defined]
    ]


def _assert_well_formed(result: BenchmarkResult) -> None:
    assert result.value > 0
    assert math.isfinite(result.value)
    assert result.unit
    if result.baseline is not None:
        assert result.baseline > 0
        assert result.ratio is not None
        assert result.ratio > 0
    assert result.met in (True, False, None)


@pytest.mark.parametrize("benchmark", _params(BENCHMARKS), ids=lambda b: b.name)
def test_each_benchmark_runs_at_a_tiny_size_on_sqlite(
    benchmark: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI has no wrk: exercise the Python load client, the one a fresh clone uses.
    monkeypatch.setenv("BENCH_LOAD_TOOL", "python")
    results = run_benchmark(benchmark, TINY, "sqlite")  # type: ignore[arg-type]
    assert results
    for result in results:
        assert result.name.startswith(benchmark.name)  # type: ignore[attr-defined]
        _assert_well_formed(result)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "benchmark",
    _params([b for b in BENCHMARKS if "postgres" in b.stores]),
    ids=lambda b: b.name,
)
def test_each_postgres_variant_runs_at_a_tiny_size(
    benchmark: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_LOAD_TOOL", "python")
    if not postgres_available():
        if os.environ.get("SUITE_REQUIRE_POSTGRES") == "1":
            pytest.fail("SUITE_REQUIRE_POSTGRES=1 but no PostgreSQL server answers")
        pytest.skip("no PostgreSQL server answers")
    results = run_benchmark(benchmark, TINY, "postgres")  # type: ignore[arg-type]
    for result in results:
        assert result.store == "postgres"
        assert result.name.endswith("_postgres")
        _assert_well_formed(result)


def test_the_runner_writes_results_json_in_the_documented_shape(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    status = main(
        [
            "--profile",
            "tiny",
            "--no-postgres",
            "--only",
            BENCHMARKS[0].name,
            "--output",
            str(output),
        ]
    )
    assert status in (0, 1)  # 1 only says a target was missed; no timing is judged here
    document = json.loads(output.read_text())
    assert set(document) >= {"machine", "benchmarks"}
    assert document["machine"]["cpu_count"] >= 1
    [row] = document["benchmarks"]
    assert set(row) >= {"name", "value", "unit", "baseline", "ratio", "target"}
    assert row["name"] == BENCHMARKS[0].name
