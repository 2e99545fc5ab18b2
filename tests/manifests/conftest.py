"""Fixtures for the install tree (manifests/): kustomize rendering with the built kubectl, and
promtool built from its Go module (hack/promtool/build.sh)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.manifests import MANIFESTS, REPO, Rendered, kustomize_dir


@pytest.fixture(scope="session")
def kustomize(kubectl_path: str) -> Callable[[Path], Rendered]:
    """Render a kustomization directory with the kubectl built from Go modules."""
    return lambda directory: kustomize_dir(kubectl_path, directory)


@pytest.fixture(scope="session")
def rendered(kustomize: Callable[[Path], Rendered]) -> Rendered:
    """`kubectl kustomize manifests/`: what `kubectl apply -k manifests/` would send."""
    return kustomize(MANIFESTS)


@pytest.fixture(scope="session")
def promtool() -> Path:
    """promtool, built (once per machine, cached) by hack/promtool/build.sh. A failed build
    fails the tests that need it; it never skips them."""
    done = subprocess.run(
        [str(REPO / "hack" / "promtool" / "build.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"hack/promtool/build.sh failed:\n{done.stderr[-3000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])
