"""Fixtures for fault injection (tests/faults, and the long runs in tests/bench): the operator
as a real process, a scene, a pod-history witness started before the scenario
(tests/support/pod_history.py), and a control plane of the test's own. Import them into a
conftest or a test module to use them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.operator import REPO, OperatorProcess, Scene, free_port
from tests.support.pod_history import PodHistory
from tests.support.private_cluster import PrivateCluster


@pytest.fixture
def scene(k8s: Any, namespace: str) -> Scene:
    return Scene(k8s, namespace)


@pytest.fixture
def operator(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """`headroom operator` for this test's namespace, with kopf's liveness endpoint on (see
    `liveness_ok`): a fault must leave the same process alive and answering."""
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    proc = OperatorProcess(
        kubeconfig, namespace, tmp_path / "operator", extra=["--liveness", liveness]
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def pod_history(k8s: Any, namespace: str) -> Iterator[Callable[[dict[str, int]], PodHistory]]:
    """`pod_history(max_sessions_by_account)` starts the watch; it is stopped at teardown."""
    started: list[PodHistory] = []

    def start(max_sessions: dict[str, int]) -> PodHistory:
        history = PodHistory(k8s, namespace, dict(max_sessions)).start()
        started.append(history)
        return history

    yield start
    for history in started:
        history.stop()


@pytest.fixture
def private_cluster(
    tmp_path_factory: pytest.TempPathFactory, kubectl_path: str
) -> Iterator[PrivateCluster]:
    """A control plane of this test's own, CRDs installed; torn down (down.sh) afterwards."""
    try:
        cluster = PrivateCluster.up(tmp_path_factory.mktemp("private-cluster"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        crds = str(REPO / "crds")
        for args in (
            ("apply", "--server-side", "--force-conflicts", "-f", crds),
            ("wait", "--for=condition=Established", "--timeout=60s", "-f", crds),
        ):
            done = cluster.kubectl(kubectl_path, *args)
            if done.returncode != 0:
                pytest.fail(f"kubectl {args[0]} on {cluster.name}: {done.stderr}", pytrace=False)
        yield cluster
    finally:
        problem = cluster.down()
        if problem:
            print(f"[faults] down.sh for {cluster.name} failed:\n{problem}")
