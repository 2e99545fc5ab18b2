"""`kubectl apply --dry-run=server` of the install tree, its kind overlay and its alert
component against the real local kube-apiserver: schemas, defaulting, admission (Pod
Security on the namespaces), RBAC object validation. Nothing is created."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.manifests import MANIFESTS, Rendered, with_components

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / "data"
INSTALL_NAMESPACES = ("headroom-system", "agents")


@pytest.fixture(scope="module")
def install_namespaces(kubectl: Any) -> None:
    """A server-side dry run creates nothing, so it cannot create the namespaces for the objects
    that follow them in the same apply (a real `kubectl apply -k` can). Make them exist, empty,
    as they would on any second apply."""
    for name in INSTALL_NAMESPACES:
        manifest = kubectl("create", "namespace", name, "--dry-run=client", "-o", "yaml").stdout
        kubectl("apply", "-f", "-", input=manifest)


def dry_run(kubectl: Any, directory: Path) -> list[str]:
    done = kubectl("apply", "--dry-run=server", "-k", str(directory), check=False)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_install_tree_dry_runs_on_the_server(
    kubectl: Any, install_namespaces: None, rendered: Rendered
) -> None:
    lines = dry_run(kubectl, MANIFESTS)
    assert len(lines) == len(rendered)
    assert all(line.endswith("(server dry run)") for line in lines), lines


def test_kind_overlay_dry_runs_on_the_server(
    kubectl: Any, install_namespaces: None, kustomize: Callable[[Path], Rendered]
) -> None:
    overlay = MANIFESTS / "overlays" / "kind"
    lines = dry_run(kubectl, overlay)
    assert len(lines) == len(kustomize(overlay))


def test_prometheus_component_dry_runs_on_the_server(
    kubectl: Any, install_namespaces: None, tmp_path: Path
) -> None:
    """Needs the monitoring.coreos.com kinds on the server: stand-in CRDs (data/) unless the
    cluster has the real ones."""
    found = kubectl("get", "crd", "prometheusrules.monitoring.coreos.com", check=False)
    if found.returncode != 0:
        kubectl("apply", "-f", str(DATA / "monitoring-crds.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/prometheusrules.monitoring.coreos.com",
            "crd/servicemonitors.monitoring.coreos.com")  # fmt: skip
    overlay = with_components(tmp_path, MANIFESTS / "components" / "prometheus-rule")
    lines = dry_run(kubectl, overlay)
    assert any(line.startswith("prometheusrule.monitoring.coreos.com/headroom") for line in lines)
    assert any(line.startswith("servicemonitor.monitoring.coreos.com/") for line in lines)


def test_the_server_refuses_a_broken_tree(
    kubectl: Any, install_namespaces: None, tmp_path: Path
) -> None:
    """The dry run has teeth: a patch that breaks the Deployment is refused by the server."""
    overlay = with_components(tmp_path)
    (overlay / "kustomization.yaml").write_text(
        (overlay / "kustomization.yaml").read_text()
        + "patches:\n- target: {kind: Deployment, name: headroom-operator}\n"
        "  patch: |-\n    - {op: replace, path: /spec/template/spec/securityContext/runAsUser,"
        " value: -5}\n"
    )
    done = kubectl("apply", "--dry-run=server", "-k", str(overlay), check=False)
    assert done.returncode != 0
    assert "runAsUser" in done.stderr


def test_the_real_task_sample_dry_runs_on_the_server(
    kubectl: Any, install_namespaces: None, kustomize: Callable[[Path], Rendered]
) -> None:
    """Repository, token Secret, MCP ConfigMap and a session using them: with the CEL rules
    only a server checks."""
    sample = MANIFESTS / "samples" / "real-task"
    done = kubectl("apply", "--dry-run=server", "-n", "agents", "-k", str(sample), check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(kustomize(sample)) == 4, lines


def test_dashboard_component_dry_runs_on_the_server(
    kubectl: Any, install_namespaces: None, tmp_path: Path
) -> None:
    overlay = with_components(tmp_path, MANIFESTS / "components" / "grafana-dashboard")
    lines = dry_run(kubectl, overlay)
    assert "configmap/headroom-dashboard created (server dry run)" in lines, lines
