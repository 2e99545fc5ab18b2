"""Third-party programs the tests run, built or installed by their hack/ scripts into the
cache (once per machine and version): helm, kubeconform, checkov. A failed build fails the
tests that need the program; it never skips them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from tests.support.manifests import Rendered

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "headroom"


def built(script: str) -> Path:
    """Run hack/<script> and return the program it prints on its last line."""
    done = subprocess.run(
        [str(REPO / "hack" / script)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"hack/{script} failed:\n{done.stderr[-3000:]}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])


class Helm:
    """The built helm, with its configuration, cache and data in a scratch directory (never
    the user's ~/.config/helm) and, when given, the test cluster's kubeconfig."""

    def __init__(self, path: Path, home: Path, kubeconfig: Path | None = None) -> None:
        self.path = path
        self.env = {
            **os.environ,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECACHEDIR": str(home / "kube-cache"),  # its discovery cache, not ~/.kube's
        }
        if kubeconfig is not None:
            self.env["KUBECONFIG"] = str(kubeconfig)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, env=self.env, check=False
        )
        if check:
            assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}"
        return done

    def template(self, *args: str, release: str = "headroom", namespace: str = "headroom-system",
                 chart: Path = CHART) -> Rendered:  # fmt: skip
        """`helm template` as objects; `args` are more flags (--set ..., -f ...)."""
        out = self("template", release, str(chart), "--namespace", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
