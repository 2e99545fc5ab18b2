"""The operator's RBAC from manifests/ is enough and no more: the operator runs an integration
scenario (accounts verified, a session placed, its pod walled, the session moved to another
account, with kopf peering on) under its own ServiceAccount's token, with no 403 anywhere;
the same identity is refused verbs it does not need; and its writes leave every Git-owned
field alone (what Argo CD compares), touching only status."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.support.manifests import MANIFESTS, Rendered
from tests.support.operator import (
    OperatorProcess,
    Scene,
    in_seconds,
    token_kubeconfig,
    wait_for,
)

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
PEERING_CRDS = MANIFESTS / "kopf" / "peering-crds.yaml"


@dataclass
class Identity:
    agents: str  # the watched namespace (the manifests' `agents`)
    system: str  # the operator's namespace (the manifests' `headroom-system`)
    kubeconfig: Path  # authenticates as the operator's ServiceAccount


def retarget(docs: Rendered, agents: str, system: str, suffix: str) -> Rendered:
    """The manifests' RBAC objects, moved to this test's namespaces; cluster-scoped names get
    a suffix so that concurrent runs do not share them. Rules are untouched."""
    moved = {"agents": agents, "headroom-system": system}
    out = []
    for doc in (copy.deepcopy(d) for d in docs if d["kind"] in RBAC_KINDS):
        meta = doc["metadata"]
        if "namespace" in meta:
            meta["namespace"] = moved[meta["namespace"]]
        else:
            meta["name"] += f"-{suffix}"
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] += f"-{suffix}"
        for subject in doc.get("subjects", []):
            subject["namespace"] = moved[subject["namespace"]]
        out.append(doc)
    assert {d["kind"] for d in out} == set(RBAC_KINDS)
    return out


@pytest.fixture
def identity(
    kubectl: Any, namespace: str, rendered: Rendered, tmp_path: Path
) -> Iterator[Identity]:
    suffix = uuid.uuid4().hex[:8]
    system = f"{namespace[:50]}-sys"
    kubectl("create", "namespace", system)
    kubectl("label", "namespace", system, "headroom.dev/test=true")
    kubectl("apply", "-f", str(PEERING_CRDS))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(PEERING_CRDS))
    objects = retarget(rendered, namespace, system, suffix)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        yield Identity(
            namespace,
            system,
            token_kubeconfig(kubectl, system, "headroom-operator", tmp_path / "sa.kubeconfig"),
        )
    finally:
        for doc in objects:
            if "namespace" not in doc["metadata"]:
                kubectl("delete", doc["kind"], doc["metadata"]["name"], "--wait=false",
                        check=False)  # fmt: skip
        kubectl("delete", "namespace", system, "--wait=false", check=False)


@pytest.fixture
def scene(k8s: Any, namespace: str) -> Scene:
    """The test's own writes, as the cluster admin (the user or GitOps, not the operator)."""
    return Scene(k8s, namespace)


@pytest.fixture
def operator_as_sa(identity: Identity, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator exactly as the Deployment runs it (peering on), authenticated as the SA."""
    proc = OperatorProcess(
        identity.kubeconfig,
        identity.agents,
        tmp_path / "operator",
        extra=[
            "--peering",
            "headroom",
            "--priority",
            "1",
            "--cluster-account-namespace",
            identity.system,
        ],
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def git_owned(obj: dict[str, Any]) -> dict[str, Any]:
    """What Argo CD diffs against Git (it ignores status), and who wrote what outside status."""
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "generation": meta.get("generation"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "finalizers": meta.get("finalizers"),
        "ownerReferences": meta.get("ownerReferences"),
        "managedFields": [
            m for m in meta.get("managedFields", []) if m.get("subresource") != "status"
        ],
    }


def as_sa(kubectl: Any, identity: Identity, *args: str) -> Any:
    return kubectl("--kubeconfig", str(identity.kubeconfig), *args, check=False)


def test_operator_scenario_under_its_own_service_account(
    scene: Scene, identity: Identity, operator_as_sa: OperatorProcess, kubectl: Any
) -> None:
    wait_for("the operator leads its peering", lambda: _active(operator_as_sa), timeout=120)
    accounts = [scene.account("alice", priority=5, ready=False), scene.account("bob", ready=False)]
    for name in ("alice", "bob"):  # verified by the operator under its own identity
        scene.wait_phase("claudeaccounts", name, "Available", timeout=90)
    created = scene.session("s1")
    first = scene.wait_running("s1", attempt=1, timeout=60)
    assert first["account"] == "alice"
    scene.finish_pod(
        first["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600),
        utilization={"five_hour": 1.0}, evidence="You've hit your 5-hour limit",
    )  # fmt: skip
    moved = scene.wait_running("s1", attempt=2, timeout=60)
    assert moved["account"] == "bob"
    assert moved["claudeSessionId"] == first["claudeSessionId"]
    wait_for(
        "alice Walled", lambda: scene.status("claudeaccounts", "alice").get("phase") == "Walled"
    )
    old = first["podName"]
    gone = lambda: (p := scene.pod(old)) is None or p.metadata.deletion_timestamp  # noqa: E731
    wait_for("the walled pod deleted", gone)

    # A session that continues s1 adds its ownerReference to s1's workspace claim: a change
    # of ownerReferences, which the cluster's OwnerReferencesPermissionEnforcement checks.
    scene.finish_pod(moved["podName"], Outcome.COMPLETED, turns=2, cost_usd=0.02)
    scene.wait_phase("agentsessions", "s1", "Succeeded", timeout=60)
    scene.session("s2", continueFrom={"name": "s1"})
    assert scene.wait_running("s2", attempt=1, timeout=60)["workspaceClaim"] == "s1-workspace"
    claim = scene.core.read_namespaced_persistent_volume_claim("s1-workspace", scene.ns)
    assert sorted(o.name for o in claim.metadata.owner_references) == ["s1", "s2"]

    # A ClusterClaudeAccount: its Secret in the operator's namespace, read (and watched) under
    # the operator's Role there; a session's copy written, and deleted when it finishes.
    shared = f"shared-{identity.system[-12:]}"
    cluster_account = _cluster_account(scene, identity, shared)
    try:
        verified = lambda: _cluster_phase(scene, shared) == "Available"  # noqa: E731
        wait_for("the cluster account verified", verified, timeout=60)
        scene.session("s3", accountScope="Cluster", accountSelector={})
        placed = scene.wait_running("s3", attempt=1, timeout=60)
        assert placed["account"] == f"ClusterClaudeAccount/{shared}"
        assert scene.core.read_namespaced_secret("headroom-credential-s3", scene.ns)
        scene.finish_pod(placed["podName"], Outcome.COMPLETED, turns=1, cost_usd=0.01)
        scene.wait_phase("agentsessions", "s3", "Succeeded", timeout=60)
        wait_for(
            "the session's credential copy deleted",
            lambda: not _secret_exists(scene, "headroom-credential-s3"),
        )
    finally:
        scene.custom.delete_cluster_custom_object(
            "headroom.dev", "v1alpha1", "clusterclaudeaccounts", cluster_account
        )

    # Every kind of write the operator makes went through: Events, runtime Secrets, the PVC.
    assert {"Placed", "Walled", "Swapped"} <= {e.reason for e in scene.events()}
    for name in ("alice", "bob"):
        assert scene.core.read_namespaced_secret(f"headroom-account-{name}", scene.ns)
    assert scene.core.read_namespaced_persistent_volume_claim("s1-workspace", scene.ns)
    peering = scene.custom.get_namespaced_custom_object(
        "kopf.dev", "v1", scene.ns, "kopfpeerings", "headroom"
    )
    assert peering.get("status"), "kopf wrote no keep-alive into the peering object"

    log = operator_as_sa.log_text()
    for refusal in ("403", "Forbidden", "forbidden", "Not enough permissions"):
        assert refusal not in log, _lines_with(log, refusal)

    # GitOps: nothing outside status changed since the test created the objects.
    assert git_owned(scene.get("agentsessions", "s1")) == git_owned(created)
    for account in accounts:  # as created, before the operator wrote anything
        now = scene.get("claudeaccounts", account["metadata"]["name"])
        assert git_owned(now) == git_owned(account)


def _cluster_account(scene: Scene, identity: Identity, name: str) -> str:
    secret = {"metadata": {"name": f"{name}-claude"}, "stringData": {"token": f"fake-{name}"}}
    scene.core.create_namespaced_secret(identity.system, secret)
    body = {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "ClusterClaudeAccount",
        "metadata": {"name": name},
        "spec": {
            "credentials": {"secretRef": {"name": f"{name}-claude"}, "type": "OAuthToken"},
            "allowedNamespaces": {"names": [identity.agents]},
        },
    }
    scene.custom.create_cluster_custom_object(
        "headroom.dev", "v1alpha1", "clusterclaudeaccounts", body
    )
    return name


def _cluster_phase(scene: Scene, name: str) -> str | None:
    found = scene.custom.get_cluster_custom_object(
        "headroom.dev", "v1alpha1", "clusterclaudeaccounts", name
    )
    return (found.get("status") or {}).get("phase")


def _secret_exists(scene: Scene, name: str) -> bool:
    try:
        scene.core.read_namespaced_secret(name, scene.ns)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _active(proc: OperatorProcess) -> bool:
    assert proc.alive(), proc.log_text()[-3000:]
    try:
        text = proc.metrics()
    except OSError:  # the metrics server is not listening yet
        return False
    return any(
        line.startswith("headroom_operator_active ") and float(line.split()[1]) == 1.0
        for line in text.splitlines()
    )


def _lines_with(log: str, word: str) -> str:
    return "\n".join(line for line in log.splitlines() if word in line)[:3000]


# Verbs the operator never uses, each refused to its ServiceAccount. (`kubectl auth can-i`
# exits 1 and prints "no" when the API server's authorizer says no.)
REFUSED = [
    ("patch", "agentsessions.headroom.dev", "agents"),  # spec is Git's
    ("update", "claudeaccounts.headroom.dev", "agents"),
    ("create", "agentsessions.headroom.dev", "agents"),
    ("delete", "claudeaccounts.headroom.dev", "agents"),
    ("update", "secrets", "agents"),
    ("get", "secrets", "other"),  # Secrets only where the operator works
    ("create", "secrets", "system"),  # cluster accounts' Secrets are read, never written
    ("patch", "secrets", "system"),
    ("delete", "secrets", "system"),
    ("patch", "clusterclaudeaccounts.headroom.dev", "cluster"),
    ("delete", "clusterclaudeaccounts.headroom.dev", "cluster"),
    ("list", "secrets", "all"),
    ("create", "pods", "system"),
    ("create", "pods --subresource=exec", "agents"),
    ("get", "pods --subresource=log", "agents"),
    ("create", "pods --subresource=eviction", "agents"),
    ("patch", "kopfpeerings.kopf.dev/someone-else", "agents"),
    ("create", "clusterkopfpeerings.kopf.dev", "cluster"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", "cluster"),
    ("list", "nodes", "cluster"),
]
GRANTED = [
    ("patch", "agentsessions.headroom.dev", "agents", "status"),
    ("delete", "agentsessions.headroom.dev", "agents", ""),
    ("patch", "persistentvolumeclaims", "agents", ""),
    # needed to change a PVC's ownerReferences under OwnerReferencesPermissionEnforcement
    ("delete", "persistentvolumeclaims", "agents", ""),
    ("patch", "claudeaccounts.headroom.dev", "agents", "status"),
    ("patch", "clusterclaudeaccounts.headroom.dev", "cluster", "status"),
    ("watch", "secrets", "system", ""),
    ("delete", "secrets", "agents", ""),  # a session's copy of a cluster account's credential
    ("create", "pods", "agents", ""),
    ("patch", "kopfpeerings.kopf.dev/headroom", "agents", ""),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", "cluster", ""),
]


def _scope(identity: Identity, where: str) -> list[str]:
    return {
        "agents": ["-n", identity.agents],
        "system": ["-n", identity.system],
        "other": ["-n", "default"],
        "all": ["--all-namespaces"],
        "cluster": [],
    }[where]


def test_the_service_account_is_refused_what_it_does_not_need(
    identity: Identity, kubectl: Any
) -> None:
    for verb, resource, where in REFUSED:
        what = resource.split()  # "pods --subresource=exec": the exec subresource of pods
        done = as_sa(kubectl, identity, "auth", "can-i", verb, *what, *_scope(identity, where))
        assert (done.returncode, done.stdout.strip()) == (1, "no"), (verb, resource, where)
    for verb, resource, where, sub in GRANTED:
        extra = [f"--subresource={sub}"] if sub else []
        done = as_sa(kubectl, identity, "auth", "can-i", verb, resource, *extra,
                     *_scope(identity, where))  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (0, "yes"), (verb, resource, where)


def test_a_spec_write_as_the_operator_is_refused_by_the_server(
    scene: Scene, identity: Identity, kubectl: Any
) -> None:
    """Not only can-i: a real request with the operator's token gets 403 and changes nothing."""
    created = scene.session("s1")
    done = as_sa(kubectl, identity, "patch", "agentsession", "s1", "-n", identity.agents,
                 "--type=merge", "-p", '{"spec": {"maxTurns": 5}}')  # fmt: skip
    assert done.returncode != 0
    assert "Forbidden" in done.stderr or "forbidden" in done.stderr, done.stderr
    assert scene.get("agentsessions", "s1")["spec"] == created["spec"]
    secrets = as_sa(kubectl, identity, "get", "secrets", "-n", "kube-system")
    assert secrets.returncode != 0 and "forbidden" in secrets.stderr.lower()
