"""Fixtures for fault injection: the operator as a real process, a scene, and a pod-history
witness started before the scenario (tests/support/pod_history.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.operator import OperatorProcess, Scene
from tests.support.pod_history import PodHistory


@pytest.fixture
def scene(k8s: Any, namespace: str) -> Scene:
    return Scene(k8s, namespace)


@pytest.fixture
def operator(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(kubeconfig, namespace, tmp_path / "operator").start()
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
