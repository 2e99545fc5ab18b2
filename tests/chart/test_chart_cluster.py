"""The Helm chart on the real local kube-apiserver, with the real helm: `helm template`
through a server-side dry run; then `helm install`, the operator placing a session and moving
it to another account under the token of the chart's own ServiceAccount, `helm upgrade` with
other values reaching the cluster, and `helm uninstall` leaving no object of the release."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.manifests import Rendered
from tests.support.operator import OperatorProcess, Scene, in_seconds, token_kubeconfig, wait_for
from tests.support.tools import CHART, Helm

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

MONITORING_CRDS = (
    Path(__file__).resolve().parents[1] / "manifests" / "data" / "monitoring-crds.yaml"
)
OPTIONAL_ON = [
    "--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true",
    "--set", "dashboard.enabled=true",
]  # fmt: skip


@dataclass
class Release:
    name: str
    system: str  # the release namespace, where the operator runs
    watched: str  # the namespace it serves

    @property
    def account(self) -> str:
        return f"{self.name}-operator"


def make_namespace(kubectl: Any, name: str, *labels: str) -> None:
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "headroom.dev/test=true", *labels)


@pytest.fixture
def release(kubectl: Any, namespace: str) -> Iterator[Release]:
    """A release name and its own namespace, which enforces Pod Security `restricted` as the
    kustomize tree's headroom-system does. Whatever a failed test left is removed after."""
    rel = Release(f"hr{uuid.uuid4().hex[:8]}", f"{namespace[:50]}-sys", namespace)
    make_namespace(kubectl, rel.system, "pod-security.kubernetes.io/enforce=restricted")
    try:
        yield rel
    finally:
        for kind in ("clusterrole", "clusterrolebinding"):
            kubectl("delete", kind, rel.account, "--ignore-not-found", "--wait=false",
                    check=False)  # fmt: skip
        kubectl("delete", "namespace", rel.system, "--wait=false", check=False)


@pytest.fixture
def monitoring_kinds(kubectl: Any) -> None:
    """PrometheusRule and ServiceMonitor known to the server: stand-in CRDs unless the cluster
    has the real ones."""
    if kubectl("get", "crd", "prometheusrules.monitoring.coreos.com", check=False).returncode:
        kubectl("apply", "-f", str(MONITORING_CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/prometheusrules.monitoring.coreos.com",
            "crd/servicemonitors.monitoring.coreos.com")  # fmt: skip


def test_helm_template_dry_runs_on_the_server(
    helm: Helm, kubectl: Any, release: Release, monitoring_kinds: None, tmp_path: Path
) -> None:
    """Every object the chart can render, CRDs included, as the server would take it:
    schemas, Pod Security of the release namespace, RBAC objects."""
    # The values that take Kubernetes objects, filled in, so that the server checks them too.
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "networkPolicy": {
            "operator": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}],
                         "apiServer": {"ports": [6443], "cidrs": ["10.0.0.1/32"]}},
            "agents": {"extraEgress": [{"to": [{"ipBlock": {"cidr": "140.82.112.0/20"}}],
                                        "ports": [{"protocol": "TCP", "port": 22}]}]},
        },
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "imagePullSecrets": [{"name": "registry"}],
    }))  # fmt: skip
    docs = helm.template("--include-crds", "--set", f"watchNamespaces={{{release.watched}}}",
                         "-f", str(values), *OPTIONAL_ON, release=release.name,
                         namespace=release.system)  # fmt: skip
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy"
                  and d["metadata"]["namespace"] == release.watched)  # fmt: skip
    assert policy["spec"]["egress"][-1]["ports"] == [{"protocol": "TCP", "port": 22}]
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role",
                     "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount",
                     "PrometheusRule", "ServiceMonitor", "ConfigMap"}  # fmt: skip
    done = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs),
                   check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(docs)
    assert all(line.endswith("(server dry run)") for line in lines), lines


def manifest(helm: Helm, rel: Release, revision: int) -> Rendered:
    out = helm("get", "manifest", rel.name, "-n", rel.system, "--revision", str(revision)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def resource(doc: dict[str, Any]) -> list[str]:
    """kubectl's name for the object: kind.group/name, and its namespace."""
    group = doc["apiVersion"].rpartition("/")[0]
    kind = doc["kind"].lower() + (f".{group}" if group else "")
    meta = doc["metadata"]
    return [f"{kind}/{meta['name']}", *(["-n", meta["namespace"]] if "namespace" in meta else [])]


def exists(kubectl: Any, doc: dict[str, Any]) -> bool:
    done = kubectl("get", *resource(doc), "--ignore-not-found", "-o", "name", check=False)
    assert done.returncode == 0, done.stderr
    return bool(done.stdout.strip())


def can_i(kubectl: Any, rel: Release, verb: str, what: str, namespace: str) -> str:
    who = f"system:serviceaccount:{rel.system}:{rel.account}"
    done = kubectl("auth", "can-i", verb, what, "-n", namespace, "--as", who, check=False)
    return str(done.stdout.strip())


def acting(proc: OperatorProcess) -> bool:
    assert proc.alive(), proc.log_text()[-3000:]
    try:
        text = proc.metrics()
    except OSError:  # not listening yet
        return False
    return "headroom_operator_active 1.0" in text.splitlines()


def test_install_run_a_failover_upgrade_and_uninstall(
    helm_cluster: Helm,
    kubectl: Any,
    k8s: Any,
    release: Release,
    monitoring_kinds: None,
    tmp_path: Path,
) -> None:
    helm, rel = helm_cluster, release
    # --- install: the pods (on kwok's simulated nodes) become Ready, so --wait returns.
    helm("install", rel.name, str(CHART), "-n", rel.system, "--wait", "--timeout", "3m",
         "--set", f"watchNamespaces={{{rel.watched}}}")  # fmt: skip
    first = manifest(helm, rel, 1)
    kinds = sorted(d["kind"] for d in first)
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                 "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"):  # fmt: skip
        assert kind in kinds, kinds
    assert kinds.count("NetworkPolicy") == 2  # the agents' and the operator's
    assert all(exists(kubectl, doc) for doc in first)
    assert can_i(kubectl, rel, "create", "pods", rel.watched) == "yes"

    # --- the operator, authenticated as the chart's ServiceAccount, peering as the chart's
    # Deployment does, and reading cluster accounts' Secrets in the release namespace (where
    # the Deployment's POD_NAMESPACE points): accounts verified, a session placed, walled and
    # moved.
    config = token_kubeconfig(kubectl, rel.system, rel.account, tmp_path / "sa.kubeconfig")
    flags = ["--peering", "headroom", "--priority", "1", "--cluster-account-namespace", rel.system]
    proc = OperatorProcess(config, rel.watched, tmp_path / "operator", extra=flags).start()
    try:
        wait_for("the operator leads its peering", lambda: acting(proc), timeout=120)
        scene = Scene(k8s, rel.watched)
        scene.account("alice", priority=5)
        scene.account("bob")
        scene.session("s1")
        first_run = scene.wait_running("s1", attempt=1, timeout=60)
        assert first_run["account"] == "alice"
        scene.finish_pod(
            first_run["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600),
            utilization={"five_hour": 1.0}, evidence="You've hit your 5-hour limit",
        )  # fmt: skip
        moved = scene.wait_running("s1", attempt=2, timeout=60)
        assert moved["account"] == "bob"
        assert moved["claudeSessionId"] == first_run["claudeSessionId"]
        assert {"Placed", "Walled", "Swapped"} <= {e.reason for e in scene.events()}
    finally:
        proc.stop()
    log = proc.log_text()
    for refusal in ("403", "Forbidden", "forbidden"):
        assert refusal not in log, [line for line in log.splitlines() if refusal in line][:20]

    # --- upgrade: a second watched namespace, one replica, a longer peering lifetime, the
    # optional monitoring objects. Each reaches the cluster; the PDB goes with the replica.
    second = f"{rel.watched[:52]}-two"
    make_namespace(kubectl, second)
    try:
        helm("upgrade", rel.name, str(CHART), "-n", rel.system, "--wait", "--timeout", "3m",
             "--set", f"watchNamespaces={{{rel.watched},{second}}}", "--set", "replicaCount=1",
             "--set", "peering.lifetime=30", *OPTIONAL_ON)  # fmt: skip
        deployment = kubectl("get", "deployment", rel.account, "-n", rel.system, "-o", "yaml")
        spec = yaml.safe_load(deployment.stdout)["spec"]
        args = spec["template"]["spec"]["containers"][0]["args"]
        assert spec["replicas"] == 1
        assert f"--namespace={second}" in args and "--peering-lifetime=30" in args
        assert can_i(kubectl, rel, "create", "pods", second) == "yes"
        upgraded = manifest(helm, rel, 2)
        for doc in first:
            if doc["kind"] == "PodDisruptionBudget":
                assert not exists(kubectl, doc)
        assert all(exists(kubectl, doc) for doc in upgraded)
        assert {"PrometheusRule", "ServiceMonitor", "ConfigMap"} <= {d["kind"] for d in upgraded}
        assert {(d["kind"], d["metadata"].get("namespace")) for d in upgraded} >= {
            ("Role", second),
            ("RoleBinding", second),
            ("NetworkPolicy", second),
        }
        history = yaml.safe_load(helm("history", rel.name, "-n", rel.system, "-o", "yaml").stdout)
        assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"),
                                                                    (2, "deployed")]  # fmt: skip

        # --- uninstall: no object of either revision, no release record, no rights left.
        helm("uninstall", rel.name, "-n", rel.system, "--wait", "--timeout", "3m")
        left = [resource(d) for d in first + upgraded if exists(kubectl, d)]
        assert left == []
        records = kubectl("get", "secrets", "-n", rel.system, "-l", f"owner=helm,name={rel.name}",
                          "-o", "name").stdout  # fmt: skip
        assert records.strip() == ""
        wait_for(
            "the operator's pods to go",
            lambda: not kubectl("get", "pods", "-n", rel.system, "-l",
                                f"app.kubernetes.io/instance={rel.name}", "-o", "name")
            .stdout.strip(),
            timeout=60,
        )  # fmt: skip
        for where in (rel.watched, second):
            assert can_i(kubectl, rel, "create", "pods", where) == "no"
        # By helm's rule CRDs outlive the release (deleting them would delete every account
        # and session): they are not part of the release, and they stay.
        assert kubectl("get", "crd", "agentsessions.headroom.dev", check=False).returncode == 0
    finally:
        kubectl("delete", "namespace", second, "--wait=false", check=False)
