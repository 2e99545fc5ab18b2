"""Failover benchmark: N sessions over 50 accounts, a quarter walled at once.

BENCH_SHARDS=2 runs two operators side by side, each with its own namespace (N sessions each,
2xN in all) and its own peering object, walls both at once and reports each shard's row; the
floor wave (tests/bench/floor.py) runs only with one operator.

Each size gets a fresh dedicated cluster (tests/bench/cluster.py), so one run's leftovers never
load the next and the apiserver's counters belong to that run alone. Speed is reported, not
asserted; the run does fail if the operator misbehaved (a session moved onto a walled account,
two live pods for a session, an account over maxSessions) or never finished the failover.
"""

from __future__ import annotations

import os

import pytest
from tests.bench.cluster import BenchCluster
from tests.bench.failover import RunResult
from tests.bench.report import breakdown, summary_table
from tests.bench.wave import run

pytestmark = pytest.mark.bench


def test_failover(sessions: int, failover_results: list[RunResult]) -> None:
    idle = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
    profile = str(sessions) in os.environ.get("BENCH_PROFILE", "").split(",")
    shards = int(os.environ.get("BENCH_SHARDS", "1"))
    cluster = BenchCluster.up()
    try:
        results = run(cluster, sessions, idle_seconds=idle, profile=profile, shards=shards)
    finally:
        if not os.environ.get("BENCH_KEEP_CLUSTER"):  # keep it to read its logs afterwards
            BenchCluster.down()
    failover_results.extend(results)
    print(f"\n{summary_table(results)}\n")
    for result in results:
        print(f"{breakdown(result)}\n")
        if result.profile is not None:
            print(f"profile of the operator: {result.profile}")
    for result in results:  # misbehaviour fails the run; speed never does
        assert not result.problems, result.problems
        assert len(result.to_pod_created) == result.k
        if result.floor is not None:
            assert not result.floor.problems, result.floor.problems
            assert len(result.floor.to_pod_created) == result.k
