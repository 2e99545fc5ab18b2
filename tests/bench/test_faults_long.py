"""The long fault-injection run: the operator SIGKILLed at random points of
100 failovers and restarted; no session lost, never two live pods for one session, maxSessions
never exceeded, checked over the whole pod history (a watch started before the scenario).

The short version runs in `make test` (tests/faults/test_operator_killed.py); this one is a
`make bench` target and prints a table. HEADROOM_FAULT_SEED replays a run, HEADROOM_FAULT_RUNS
repeats it with fresh seeds.
"""

from __future__ import annotations

import os
import time

import pytest
from tests.support.fault_fixtures import operator, pod_history, scene
from tests.support.faults import (
    KillPlan,
    active_sessions_match_live_pods,
    assert_history_clean,
    fault_seed,
    kill_during_failovers,
    make_pool,
    operator_log_counts,
    settled,
)
from tests.support.operator import wait_for

pytestmark = pytest.mark.bench

__all__ = ["operator", "pod_history", "scene"]

LONG = KillPlan(
    accounts=10, max_sessions=3, sessions=20, failovers=100, kills=12, settle_timeout=300
)
RUNS = int(os.environ.get("HEADROOM_FAULT_RUNS", "1"))


@pytest.mark.parametrize("run", range(RUNS), ids=[f"run{i + 1}" for i in range(RUNS)])
def test_long_kills_during_100_failovers(scene, operator, pod_history, run: int) -> None:
    seed = fault_seed() if run == 0 else fault_seed() + run
    print(f"\n[faults-long] seed={seed} (replay with HEADROOM_FAULT_SEED={seed})")
    limits = make_pool(scene, LONG)
    history = pod_history(limits)
    report = kill_during_failovers(scene, operator, history, LONG, seed)
    settle_started = time.monotonic()
    states = wait_for(
        "every session Running, Waiting or finished",
        lambda: settled(scene, history, {"ok:Running", "ok:Waiting", "ok:Succeeded", "ok:Failed"}),
        timeout=LONG.settle_timeout,
    )
    coherent_after = time.monotonic() - settle_started
    wait_for(
        "every session Running again after the walls reset",
        lambda: settled(scene, history, {"ok:Running"}),
        timeout=LONG.settle_timeout,
    )
    all_running_after = time.monotonic() - settle_started
    assert_history_clean(scene, history)
    wait_for(
        "activeSessions equal to live pods on every account",
        lambda: active_sessions_match_live_pods(scene, history, limits),
        timeout=60,
    )
    over = {a: n for a, n in history.peak_per_account.items() if n > limits.get(a, 0)}
    rows = [
        ("seed", str(seed)),
        ("accounts x maxSessions", f"{LONG.accounts} x {LONG.max_sessions}"),
        ("sessions", str(len(states))),
        ("failovers (walled pods reported)", str(report.failovers)),
        ("operator SIGKILLs + restarts", str(report.kills)),
        ("kill points (failover #, delay)", ", ".join(report.kill_points)),
        ("pods gone before reported (raced)", str(report.raced)),
        ("pod events watched", str(len(history.events))),
        ("peak live pods per session", str(history.peak_per_session)),
        ("accounts over maxSessions (peak)", str(over or "none")),
        ("invariant violations", str(len(history.violations))),
        ("sessions lost", str(LONG.sessions - len(states))),
        ("stream wall-clock", f"{report.elapsed:.1f} s"),
        ("settle: coherent / all Running", f"{coherent_after:.1f} s / {all_running_after:.1f} s"),
        *((what, str(n)) for what, n in operator_log_counts(operator).items()),
    ]
    width = max(len(k) for k, _ in rows)
    table = "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
    print(f"\n[faults-long] operator killed during failovers (run {run + 1}/{RUNS})\n{table}")
    assert report.failovers == LONG.failovers and report.kills == LONG.kills
    assert history.peak_per_session == 1 and not over
    assert operator_log_counts(operator)["tracebacks"] == 0
    assert operator.alive()
