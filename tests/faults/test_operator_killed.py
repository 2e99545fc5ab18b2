"""The operator SIGKILLed at random points of a stream of failovers, and restarted.

Afterwards every session is Running, Waiting or finished and none is lost; over the whole
history (a pod watch started before the scenario) no session ever had two live pods and no
account ever ran more pods than its maxSessions. The long version is in
tests/bench/test_faults_long.py.
"""

from __future__ import annotations

import pytest
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

pytestmark = pytest.mark.integration


def test_random_kills_during_failovers_lose_nothing_and_never_double_run(
    scene, operator, pod_history
) -> None:
    plan = KillPlan(accounts=4, max_sessions=2, sessions=6, failovers=24, kills=4)
    seed = fault_seed()
    print(f"\n[faults] operator kills: seed={seed} (replay with HEADROOM_FAULT_SEED={seed})")
    limits = make_pool(scene, plan)
    history = pod_history(limits)
    report = kill_during_failovers(scene, operator, history, plan, seed)
    print(f"[faults] {report.line(history)}")
    assert report.failovers == plan.failovers and report.kills == plan.kills

    # None lost: each session is in a coherent state (one live pod iff Running)...
    states = wait_for(
        "every session Running, Waiting or finished",
        lambda: settled(scene, history, {"ok:Running", "ok:Waiting", "ok:Succeeded", "ok:Failed"}),
        timeout=plan.settle_timeout,
    )
    assert len(states) == plan.sessions, states
    # ...and, since every wall resets within seconds, each is woken and works again.
    wait_for(
        "every session Running again after the walls reset",
        lambda: settled(scene, history, {"ok:Running"}),
        timeout=plan.settle_timeout,
    )
    assert_history_clean(scene, history)
    wait_for(
        "activeSessions equal to live pods on every account",
        lambda: active_sessions_match_live_pods(scene, history, limits),
        timeout=60,
    )
    assert operator.alive()
    counts = operator_log_counts(operator)
    print(f"[faults] after settling: {history.summary()}; {counts}")
    assert counts["tracebacks"] == 0
