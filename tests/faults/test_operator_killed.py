"""The operator SIGKILLed at random points of a stream of failovers, and restarted.

Afterwards every session is Running, Waiting or finished and none is lost; over the whole
history (a pod watch started before the scenario) no session ever had two live pods and no
account ever ran more pods than its maxSessions. The long version is in
tests/bench/test_faults_long.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cluster_accounts import (
    cluster_status,
    create_cluster_account,
    delete_cluster_account,
    wait_cluster_phase,
)
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
from tests.support.operator import OperatorProcess, Scene, free_port, wait_for
from tests.support.pod_history import PodHistory

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


@pytest.fixture
def second_team(k8s: Any, kubectl: Any, namespace: str) -> Iterator[tuple[Scene, str]]:
    """A second team namespace, and the operator's namespace for cluster accounts' Secrets."""
    team, system = f"{namespace[:50]}-b", f"{namespace[:50]}-sys"
    for name in (team, system):
        kubectl("create", "namespace", name)
        kubectl("label", "namespace", name, "headroom.dev/test=true")
    wait_for(
        f"default ServiceAccount in {team}",
        lambda: kubectl("get", "sa", "default", "-n", team, check=False).returncode == 0,
    )
    try:
        yield Scene(k8s, team), system
    finally:
        for name in (team, system):
            kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_random_kills_with_cluster_accounts_shared_by_two_namespaces(
    k8s: Any, scene: Scene, second_team: tuple[Scene, str], kubeconfig: Path, tmp_path: Path
) -> None:
    """The same stream, on a pool of ClusterClaudeAccounts that two namespaces' sessions
    share: one witness over both namespaces checks maxSessions across them."""
    team_b, system = second_team
    plan = KillPlan(accounts=3, max_sessions=2, sessions=6, failovers=20, kills=4)
    suffix = uuid.uuid4().hex[:6]
    names = [f"pool-{i}-{suffix}" for i in range(plan.accounts)]
    admits = {"names": [scene.ns, team_b.ns]}
    limits: dict[str, int] = {}
    for name in names:
        create_cluster_account(k8s, system, name, max_sessions=plan.max_sessions, admits=admits)
        limits[f"ClusterClaudeAccount/{name}"] = plan.max_sessions
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    extra = ["--liveness", liveness, "-n", team_b.ns, "--cluster-account-namespace", system]
    operator = OperatorProcess(kubeconfig, scene.ns, tmp_path / "operator", extra=extra).start()
    history = PodHistory(k8s, scene.ns, limits, also=(team_b.ns,)).start()
    try:
        for name in names:
            wait_cluster_phase(k8s, name, "Available", timeout=60)
        seed = fault_seed()
        print(f"\n[faults] shared pool kills: seed={seed} (replay: HEADROOM_FAULT_SEED={seed})")
        teams = [scene, team_b]
        report = kill_during_failovers(
            teams, operator, history, plan, seed, accountScope="Cluster", accountSelector={}
        )
        print(f"[faults] {report.line(history)}")
        assert report.failovers == plan.failovers and report.kills == plan.kills
        wanted = {"ok:Running", "ok:Waiting", "ok:Succeeded", "ok:Failed"}
        states = wait_for(
            "every session Running, Waiting or finished",
            lambda: settled(teams, history, wanted),
            timeout=plan.settle_timeout,
        )
        assert len(states) == plan.sessions, states
        wait_for(
            "every session Running again after the walls reset",
            lambda: settled(teams, history, {"ok:Running"}),
            timeout=plan.settle_timeout,
        )
        assert_history_clean(teams, history)
        # Both namespaces ran on the shared accounts, and each account's one count is right.
        on = {pod.account for pod in history.live().values()}
        assert on <= set(limits), on
        namespaces = {p.session.split("-")[0] for p in history.live().values()}
        assert namespaces == {"t0", "t1"}
        wait_for(
            "activeSessions equal to live pods on every cluster account",
            lambda: all(
                cluster_status(k8s, name).get("activeSessions")
                == sum(1 for p in history.live().values() if p.account.endswith("/" + name))
                for name in names
            ),
            timeout=60,
        )
        assert operator.alive()
        print(f"[faults] after settling: {history.summary()}; {operator_log_counts(operator)}")
    finally:
        history.stop()
        operator.stop()
        for name in names:
            delete_cluster_account(k8s, name)
