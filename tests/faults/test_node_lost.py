"""A kwok node with running agent pods is lost (tests/support/kwok_nodes.py says how): the
node lifecycle controller taints it unreachable, taint-based eviction deletes its pods, and
with no kubelet they stay Terminating. A Terminating pod may still be running on a node cut
off from the cluster, so the operator must not replace it: every session waits, saying
NodeLost. Once the node is fenced (out-of-service: the pod garbage collector removes the
pods), or once its kubelet is back (it confirms their deletion), each session gets exactly
one new pod, on a live node, on the same account, with no failure and no swap counted. A
pod-history watch checks that no session ever had two live pods (a Terminating pod counts as
live) and no account more than maxSessions.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.bench.failover import Driver
from tests.support.faults import assert_history_clean, liveness_ok
from tests.support.kwok_nodes import come_back, create_node, fence, lose, pods_on, tainted
from tests.support.operator import OperatorProcess, Scene, free_port, wait_for

pytestmark = pytest.mark.integration

SESSIONS = ("s0", "s1", "s2")
WINDOW = 10.0  # how long the sessions are watched waiting on their Terminating pods
# The default tolerations of 300 s, made short: taint-based eviction after 2 s.
TOLERATIONS = [
    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
    for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
]


@pytest.fixture
def nodes(k8s: Any) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(lost node, spare node, the label both carry and agent pods select). The spare is
    created only once the first is lost, so every agent pod starts on the first."""
    suffix = uuid.uuid4().hex[:6]
    label = {"headroom.dev/test-node": f"nl-{suffix}"}
    lost, spare = f"nl-{suffix}-a", f"nl-{suffix}-b"
    core = client.CoreV1Api(k8s)
    create_node(core, lost, label)
    try:
        yield lost, spare, label
    finally:
        for name in (lost, spare):
            try:
                core.delete_node(name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


def _workspaces(kubeconfig: Path, namespace: str) -> list[str]:
    """Bound claims (the cluster has no provisioner; the scheduler waits on unbound ones)."""
    driver = Driver(kubeconfig, namespace)
    try:
        driver.all(driver.workspace, list(SESSIONS))
    finally:
        driver.close()
    return [f"{namespace}-{s}" for s in SESSIONS]


@pytest.mark.parametrize("recovery", ["fenced", "kubelet-returns"])
def test_pods_of_a_lost_node_are_replaced_once_and_only_once_they_are_gone(
    k8s: Any, kubeconfig: Path, namespace: str, nodes, pod_history, tmp_path: Path, recovery: str
) -> None:
    lost, spare, label = nodes
    core = client.CoreV1Api(k8s)
    scene = Scene(k8s, namespace)
    volumes = _workspaces(kubeconfig, namespace)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    extra = ["--liveness", liveness, "--agent-node-selector", json.dumps(label)]
    operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator", extra=extra).start()
    try:
        pid = operator.proc.pid
        scene.account("alice", max_sessions=3, priority=5)
        scene.account("bob", max_sessions=3)
        history = pod_history({"alice": 3, "bob": 3})
        for name in SESSIONS:
            scene.session(name, podTemplate={"spec": {"tolerations": TOLERATIONS}})
        first = {n: scene.wait_running(n, attempt=1, timeout=60) for n in SESSIONS}
        wait_for(
            "every agent pod Running on the node",
            lambda: len([p for p in pods_on(core, namespace, lost)
                         if p.status.phase == "Running"]) == len(SESSIONS),
            timeout=60,
        )  # fmt: skip

        lose(core, lost)
        wait_for("the unreachable taint", lambda: tainted(core, lost,
                 "node.kubernetes.io/unreachable"), timeout=90, interval=1)  # fmt: skip
        wait_for(
            "every pod evicted (Terminating)",
            lambda: all(p.metadata.deletion_timestamp for p in pods_on(core, namespace, lost)),
            timeout=60,
        )
        create_node(core, spare, label)  # room to move to, were the operator to move early

        # Nothing moves while the pods are Terminating; each session says why.
        for name in SESSIONS:
            ready = wait_for(
                f"{name} Ready=False NodeLost",
                lambda n=name: (
                    (c := scene.condition("agentsessions", n, "Ready")).get("reason") == "NodeLost"
                    and c
                ),
            )
            assert lost in ready["message"], ready
        time.sleep(WINDOW)
        for name in SESSIONS:
            status = scene.status("agentsessions", name)
            assert (status["phase"], status["attempt"]) == ("Running", 1), (name, status)
        assert pods_on(core, namespace, spare) == []
        node_lost = [e for e in scene.events() if e.reason == "NodeLost"]
        assert Counter(e.involved_object.name for e in node_lost) == dict.fromkeys(SESSIONS, 1)

        # Fenced: the pod garbage collector removes the pods. Or the kubelet is back and
        # confirms their deletion. Either way, each session moves once.
        if recovery == "fenced":
            fence(core, lost)
        else:
            # Cordoned first: the node lifecycle controller lifts its NoExecute taint only at
            # its next pass (25 s), and a new pod placed there meanwhile (its 2 s toleration
            # lets the scheduler) is evicted again: a second, genuine loss, not this test's.
            core.patch_node(lost, {"spec": {"unschedulable": True}})
            come_back(core, lost)
        moved = {n: scene.wait_running(n, attempt=2, timeout=120) for n in SESSIONS}
        wait_for(
            "the new pods Running",
            lambda: len([p for node in (lost, spare) for p in pods_on(core, namespace, node)
                         if p.status.phase == "Running"]) == len(SESSIONS),
            timeout=60,
        )  # fmt: skip
        time.sleep(3)  # a second move would come now, if any
        for name in SESSIONS:
            status = scene.status("agentsessions", name)
            assert status["attempt"] == 2 and status["account"] == first[name]["account"]
            assert (status["failures"], status["swapCount"]) == (0, 0), status
            assert status["lastOutcome"]["outcome"] == "evicted", status["lastOutcome"]
            assert moved[name]["podName"] == f"{name}-2"
        added = Counter(s.session for kind, s in history.events if kind == "ADDED")
        assert added == dict.fromkeys(SESSIONS, 2), added
        assert_history_clean(scene, history)
        assert history.peak_per_session == 1, history.summary()
        print(f"\n[faults] node lost: {history.summary()}")
        assert operator.alive() and operator.proc.pid == pid and liveness_ok(operator)
        assert "Traceback" not in operator.log_text()
    finally:
        operator.stop()
        for volume in volumes:
            try:
                core.delete_persistent_volume(volume)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
