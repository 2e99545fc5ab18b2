"""Install the project's CRDs (crds/) into a test cluster and wait until they serve."""

from __future__ import annotations

import subprocess
from pathlib import Path

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


def install_crds(kubectl_path: str, kubeconfig: Path) -> str | None:
    """Apply every CRD and wait for Established: None when done, else what went wrong."""
    base = [kubectl_path, "--kubeconfig", str(kubeconfig)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, check=False)

    crds = sorted(CRD_DIR.glob("*.yaml"))
    for crd in crds:
        done = run("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        if done.returncode != 0:
            return f"installing {crd.name} failed:\n{done.stderr}"
    if not crds:
        return None
    names = run("get", "-f", str(CRD_DIR), "-o", "name")
    wait = run("wait", "--for=condition=Established", "--timeout=60s", *names.stdout.split())
    if names.returncode != 0 or wait.returncode != 0:
        return f"CRDs not Established:\n{names.stderr}{wait.stderr}"
    return None
