"""Benchmark fixtures. Sizes come from BENCH_SIZES (default 100,1000,2000,5000); the failover
results of the whole session are written to results/bench/latest.md at its end."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.bench.failover import RunResult


def bench_sizes() -> list[int]:
    raw = os.environ.get("BENCH_SIZES", "100,1000,2000,5000")
    return sorted(int(x) for x in raw.replace(" ", "").split(",") if x)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sessions" in metafunc.fixturenames:
        sizes = bench_sizes()
        metafunc.parametrize("sessions", sizes, ids=[f"N={n}" for n in sizes])


@pytest.fixture(scope="session")
def failover_results() -> Iterator[list[RunResult]]:
    results: list[RunResult] = []
    yield results
    if results:
        from tests.bench.report import summary_table, write_latest

        ordered = sorted(results, key=lambda r: (r.n, r.shard))
        path = write_latest(ordered)
        print(f"\n{summary_table(ordered)}\n\nwritten to {path}")
