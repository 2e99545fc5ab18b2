from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.operator import OperatorProcess, Scene


@pytest.fixture
def scene(k8s: Any, namespace: str) -> Scene:
    return Scene(k8s, namespace)


@pytest.fixture
def operator(kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """`headroom operator` watching only this test's namespace, as a real process."""
    proc = OperatorProcess(kubeconfig, namespace, tmp_path / "operator").start()
    try:
        yield proc
    finally:
        proc.stop()
