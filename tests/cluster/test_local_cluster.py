"""The local control plane is the real thing: our own kube-apiserver build, a scheduler
that places pods on kwok nodes, and a controller manager that collects garbage."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

VERSIONS_ENV = Path(__file__).resolve().parents[2] / "hack" / "cluster" / "versions.env"
T = TypeVar("T")
# The `kubectl` fixture from tests/conftest.py.
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def built_kubernetes_version() -> str:
    for line in VERSIONS_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "KUBERNETES_VERSION":
            return value.strip()
    raise AssertionError(f"KUBERNETES_VERSION missing from {VERSIONS_ENV}")


def test_server_is_the_apiserver_we_built(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == built_kubernetes_version()
    # Unset version ldflags would show up as the Go module's placeholder.
    assert version["gitTreeState"] == "clean"


def test_apiserver_is_ready(kubectl: Kubectl) -> None:
    assert kubectl("get", "--raw", "/readyz").stdout == "ok"


def test_kwok_nodes_are_ready(kubectl: Kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-l", "type=kwok", "-o", "json").stdout)["items"]
    assert len(nodes) >= 1
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]


def test_plain_pod_is_scheduled_and_runs(kubectl: Kubectl, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "namespace": namespace},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    kubectl("apply", "-f", "-", input=json.dumps(pod))

    def running() -> dict[str, Any] | None:
        got = json.loads(kubectl("-n", namespace, "get", "pod", "plain", "-o", "json").stdout)
        return got if got["status"].get("phase") == "Running" else None

    got = wait_for(running, 60, "pod plain to reach Running")
    # The scheduler (not the test) picked the node, and it is one of the kwok nodes.
    node = json.loads(kubectl("get", "node", got["spec"]["nodeName"], "-o", "json").stdout)
    assert node["metadata"]["labels"]["type"] == "kwok"


def test_controller_manager_collects_orphans(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    assert owner.metadata is not None and owner.metadata.uid
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )
    # Background propagation: the API server deletes only the owner; removing the
    # dependent is the controller manager's garbage collector's job.
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    wait_for(gone, 60, "the garbage collector to delete the orphaned dependent")


def test_owner_references_need_delete_permission_as_in_production(
    kubectl: Kubectl, namespace: str
) -> None:
    """OwnerReferencesPermissionEnforcement is on (as on OpenShift): changing an object's
    ownerReferences needs delete permission on it, and blockOwnerDeletion needs update on
    the owner's finalizers. The operator's RBAC is tested under it (tests/manifests)."""
    ns = ["-n", namespace]
    kubectl(*ns, "create", "serviceaccount", "writer")
    kubectl(*ns, "create", "role", "cm-write", "--verb=get,create,patch", "--resource=configmaps")
    kubectl(*ns, "create", "rolebinding", "cm-write", "--role=cm-write",
            f"--serviceaccount={namespace}:writer")  # fmt: skip
    owner = json.loads(kubectl(*ns, "create", "configmap", "owner", "-o", "json").stdout)
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    as_writer = ["--as", f"system:serviceaccount:{namespace}:writer", *ns]
    blocking_ref = {**ref, "blockOwnerDeletion": True}
    blocking = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "blocking", "ownerReferences": [blocking_ref]},
    }
    refused = kubectl(*as_writer, "create", "-f", "-", input=json.dumps(blocking), check=False)
    assert "cannot set blockOwnerDeletion" in refused.stderr, (refused.stdout, refused.stderr)
    kubectl(*as_writer, "create", "configmap", "owned")
    patch = json.dumps({"metadata": {"ownerReferences": [ref]}})

    def add_owner() -> subprocess.CompletedProcess[str]:
        return kubectl(*as_writer, "patch", "configmap", "owned", "-p", patch, check=False)

    refused = add_owner()
    assert "cannot set an ownerRef on a resource you can't delete" in refused.stderr, (
        refused.stdout,
        refused.stderr,
    )
    kubectl(*ns, "create", "role", "cm-delete", "--verb=delete", "--resource=configmaps")
    kubectl(*ns, "create", "rolebinding", "cm-delete", "--role=cm-delete",
            f"--serviceaccount={namespace}:writer")  # fmt: skip
    wait_for(lambda: add_owner().returncode == 0, 30, "the ownerReference added with delete")
