"""Control-plane restarts under load: a wave of 200 failovers (walled pods reported as a
kubelet would) on a control plane of the test's own, with etcd and kube-apiserver SIGKILLed
and started again at random points of it. No session lost, never two live pods for one
session, maxSessions never exceeded (a pod-history watch started before the wave), and the
operator rides every restart out in the same process.

A `make bench` target (it runs for minutes); HEADROOM_FAULT_SEED replays a run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from tests.support.fault_fixtures import private_cluster
from tests.support.faults import (
    KillPlan,
    active_sessions_match_live_pods,
    assert_history_clean,
    fault_seed,
    kill_during_failovers,
    liveness_ok,
    make_pool,
    operator_log_counts,
    settled,
)
from tests.support.operator import OperatorProcess, Scene, free_port, wait_for
from tests.support.pod_history import PodHistory
from tests.support.private_cluster import PrivateCluster

pytestmark = pytest.mark.bench

__all__ = ["private_cluster"]

WAVE = KillPlan(
    accounts=10, max_sessions=3, sessions=20, failovers=200, kills=8, settle_timeout=300
)


@pytest.fixture
def private_api(private_cluster: PrivateCluster) -> Iterator[Any]:
    api = config.new_client_from_config(config_file=str(private_cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield api
    finally:
        api.close()


def restarter(cluster: PrivateCluster, kubectl_path: str, scene: Scene, downtime: list[float]):
    """The fault: etcd or kube-apiserver (alternating, the first chosen by the seed) SIGKILLed
    within 1.5 s of the failover just reported, down 1 to 8 s, started again; returns once the
    API answers the driver again."""
    turn = {"n": 0}

    def restart(rng: random.Random, failover: int) -> str:
        which = ("etcd", "kube-apiserver")[(turn["n"] + failover % 2) % 2]
        turn["n"] += 1
        component = cluster.etcd if which == "etcd" else cluster.apiserver
        delay, down = rng.uniform(0.0, 1.5), rng.uniform(1.0, 8.0)
        time.sleep(delay)
        stopped = time.monotonic()
        component.stop()
        time.sleep(down)
        component.start()
        cluster.wait_ready(kubectl_path, timeout=180)
        wait_for("the driver's own calls answered", lambda: _answers(scene), timeout=60)
        downtime.append(time.monotonic() - stopped)
        return f"#{failover}:{which}+{delay:.2f}s/{downtime[-1]:.1f}s"

    return restart


def _answers(scene: Scene) -> bool:
    try:
        scene.sessions()
    except Exception:  # a pooled connection to the old apiserver: the next one is fresh
        return False
    return True


def test_etcd_and_apiserver_restarts_during_200_failovers(
    private_cluster: PrivateCluster, private_api: Any, kubectl_path: str, tmp_path: Path
) -> None:
    seed = fault_seed()
    print(f"\n[control-plane] seed={seed} (replay with HEADROOM_FAULT_SEED={seed})")
    core = client.CoreV1Api(private_api)
    ns = "control-plane-restarts"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    wait_for(
        "default ServiceAccount",
        lambda: (
            core.list_namespaced_service_account(ns, field_selector="metadata.name=default").items
        ),
        timeout=60,
    )
    scene = Scene(private_api, ns)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    operator = OperatorProcess(
        private_cluster.kubeconfig, ns, tmp_path / "operator", extra=["--liveness", liveness]
    ).start()
    history: PodHistory | None = None
    try:
        assert operator.proc is not None
        pid = operator.proc.pid
        limits = make_pool(scene, WAVE)
        history = PodHistory(private_api, ns, limits).start()
        downtime: list[float] = []
        fault = restarter(private_cluster, kubectl_path, scene, downtime)
        report = kill_during_failovers(scene, operator, history, WAVE, seed, fault)
        settle_started = time.monotonic()
        states = wait_for(
            "every session Running, Waiting or finished",
            lambda: settled(scene, history, {"ok:Running", "ok:Waiting", "ok:Succeeded"}),
            timeout=WAVE.settle_timeout,
        )
        coherent_after = time.monotonic() - settle_started
        wait_for(
            "every session Running again after the walls reset",
            lambda: settled(scene, history, {"ok:Running"}),
            timeout=WAVE.settle_timeout,
        )
        all_running_after = time.monotonic() - settle_started
        assert_history_clean(scene, history, allow_relist=True)
        wait_for(
            "activeSessions equal to live pods on every account",
            lambda: active_sessions_match_live_pods(scene, history, limits),
            timeout=60,
        )
        over = {a: n for a, n in history.peak_per_account.items() if n > limits.get(a, 0)}
        counts = operator_log_counts(operator)
        rows = [
            ("seed", str(seed)),
            ("accounts x maxSessions", f"{WAVE.accounts} x {WAVE.max_sessions}"),
            ("sessions (present at the end)", f"{WAVE.sessions} ({len(states)})"),
            ("failovers (walled pods reported)", str(report.failovers)),
            ("control-plane restarts", str(report.kills)),
            ("restarts (failover #, which, delay / down)", ", ".join(report.kill_points)),
            ("longest outage (kill to API answering)", f"{max(downtime, default=0):.1f} s"),
            ("pods gone before reported (raced)", str(report.raced)),
            ("pod events watched, watch relists", f"{len(history.events)}, {len(history.relists)}"),
            ("peak live pods per session", str(history.peak_per_session)),
            ("accounts over maxSessions (peak)", str(over or "none")),
            ("invariant violations", str(len(history.violations))),
            ("wave wall-clock", f"{report.elapsed:.1f} s"),
            (
                "settle: coherent / all Running",
                f"{coherent_after:.1f} s / {all_running_after:.1f} s",
            ),
            ("operator restarts", "0" if operator.proc.pid == pid else "restarted"),
            *((what, str(n)) for what, n in counts.items()),
        ]
        width = max(len(k) for k, _ in rows)
        table = "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
        print(f"\n[control-plane] etcd and kube-apiserver restarted during failovers\n{table}")
        assert report.failovers == WAVE.failovers and report.kills == WAVE.kills
        assert len(states) == WAVE.sessions
        assert history.peak_per_session == 1 and not over
        assert operator.alive() and operator.proc.pid == pid and liveness_ok(operator)
    finally:
        if history is not None:
            history.stop()
        operator.stop()
