"""Fixtures for fault injection: the operator as a real process, a scene, and a pod-history
witness started before the scenario (tests/support/pod_history.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.operator import OperatorProcess, Scene, free_port
from tests.support.pod_history import PodHistory


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
