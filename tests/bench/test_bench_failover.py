"""Failover benchmark: N sessions over 50 accounts, a quarter walled at once.

Each size gets a fresh dedicated cluster (tests/bench/cluster.py), so one run's leftovers never
load the next and the apiserver's counters belong to that run alone. Speed is reported, not
asserted; the run does fail if the operator misbehaved (a session moved onto a walled account,
two live pods for a session, an account over maxSessions) or never finished the failover.
"""

from __future__ import annotations

import os

import pytest
from tests.bench.cluster import BenchCluster
from tests.bench.failover import RunResult, run
from tests.bench.report import breakdown, summary_table

pytestmark = pytest.mark.bench


def test_failover(sessions: int, failover_results: list[RunResult]) -> None:
    idle = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
    profile = str(sessions) in os.environ.get("BENCH_PROFILE", "").split(",")
    cluster = BenchCluster.up()
    try:
        result = run(cluster, sessions, idle_seconds=idle, profile=profile)
    finally:
        if not os.environ.get("BENCH_KEEP_CLUSTER"):  # keep it to read its logs afterwards
            BenchCluster.down()
    failover_results.append(result)
    print(f"\n{summary_table([result])}\n\n{breakdown(result)}")
    if result.profile is not None:
        print(f"profile of the operator: {result.profile}")
    assert not result.problems, result.problems
    assert len(result.to_pod_created) == result.k
