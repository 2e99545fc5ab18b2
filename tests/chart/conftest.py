"""Fixtures for the Helm chart (charts/headroom): the built helm against the test cluster (the
root conftest has it without one), and the kustomize tree the chart must agree with."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.manifests import MANIFESTS, Rendered, kustomize_dir
from tests.support.tools import Helm


@pytest.fixture(scope="session")
def helm_cluster(
    helm_path: Path, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Helm:
    """helm against the test cluster."""
    return Helm(helm_path, tmp_path_factory.mktemp("helm-cluster"), kubeconfig)


@pytest.fixture(scope="session")
def kustomized(kubectl_path: str) -> Rendered:
    """`kubectl kustomize manifests/`, what the chart's defaults must match."""
    return kustomize_dir(kubectl_path, MANIFESTS)
