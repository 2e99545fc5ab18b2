"""The kube-apiserver stopped for 30 s and started again, on a control plane of this test's own
(never the shared cluster). The operator must ride it out in the same process: afterwards it
wakes the session whose wall reset during the outage, places a new session and moves a
walled one, and never ran two pods for a session or too many on an account.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from tests.support.faults import assert_history_clean, liveness_ok, settled
from tests.support.operator import OperatorProcess, Scene, free_port, in_seconds, wait_for
from tests.support.pod_history import PodHistory
from tests.support.private_cluster import PrivateCluster

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30


@pytest.fixture
def private_api(private_cluster: PrivateCluster) -> Iterator[Any]:
    api = config.new_client_from_config(config_file=str(private_cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield api
    finally:
        api.close()


def _namespace(api: Any, name: str) -> str:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        "default ServiceAccount",
        lambda: (
            core.list_namespaced_service_account(name, field_selector="metadata.name=default").items
        ),
        timeout=60,
    )
    return name


def test_operator_recovers_from_apiserver_outage_without_restarting(
    private_cluster: PrivateCluster, private_api: Any, kubectl_path: str, tmp_path: Path
) -> None:
    ns = _namespace(private_api, "faults-outage")
    scene = Scene(private_api, ns)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    operator = OperatorProcess(
        private_cluster.kubeconfig, ns, tmp_path / "operator", extra=["--liveness", liveness]
    ).start()
    history: PodHistory | None = None
    try:
        pid = operator.proc.pid if operator.proc else -1
        scene.account("alice", max_sessions=2, priority=5)
        scene.account("bob", max_sessions=3)
        history = PodHistory(private_api, ns, {"alice": 2, "bob": 3}).start()
        s1 = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
        scene.wait_running(scene.session("s2")["metadata"]["name"], attempt=1)
        s3 = scene.wait_running(scene.session("s3")["metadata"]["name"], attempt=1)
        assert (s1["account"], s3["account"]) == ("alice", "bob")
        # bob walls until a moment that falls inside the outage; s3 has nowhere to go.
        bob_reset = in_seconds(10)
        scene.finish_pod(s3["podName"], Outcome.WALLED, window="five_hour", resets_at=bob_reset)
        waiting = scene.wait_phase("agentsessions", "s3", "Waiting")
        assert waiting["waitingUntil"] == bob_reset

        private_cluster.apiserver.stop()
        stopped = time.monotonic()
        assert not private_cluster.ready(kubectl_path)
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            assert operator.alive(), "the operator died while the apiserver was down"
            time.sleep(1)
        private_cluster.apiserver.start()
        private_cluster.wait_ready(kubectl_path)
        print(f"[faults] apiserver down for {time.monotonic() - stopped:.1f}s")

        # The wake-up that came due during the outage is not lost.
        assert scene.wait_running("s3", attempt=2, timeout=120)["account"] == "bob"
        # New work is placed...
        s4 = scene.wait_running(scene.session("s4")["metadata"]["name"], attempt=1, timeout=60)
        assert s4["account"] == "bob"
        # ...and a walled session moves.
        scene.finish_pod(
            s1["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600)
        )
        moved = scene.wait_running("s1", attempt=2, timeout=60)
        assert (moved["account"], moved["swaps"][-1]["reason"]) == ("bob", "Walled")
        wait_for(
            "coherent sessions",
            lambda: settled(scene, history, {"ok:Running"}) if history else None,
            timeout=60,
        )
        assert_history_clean(scene, history, allow_relist=True)
        print(f"[faults] apiserver outage: {history.summary()}; relists: {history.relists}")
        assert operator.alive() and operator.proc is not None and operator.proc.pid == pid
        assert liveness_ok(operator)
    finally:
        if history is not None:
            history.stop()
        operator.stop()
