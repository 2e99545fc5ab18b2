"""`headroom-dev provisioner` in the node's cluster: a claim gets a hostPath volume of its own
(StorageClass headroom-local, the default), a pod on the real node writes to it as the agent
user, and deleting the claim deletes the volume and its directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.support.node_fixtures import AGENT_IMAGE
from tests.support.provisioner import ProvisionerProcess
from tests.support.realnode import RealNode

pytestmark = pytest.mark.integration


def _get(node: RealNode, *args: str) -> dict[str, Any] | None:
    done = node.kubectl("get", *args, "-o", "json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def _wait(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_claim_is_provisioned_mounted_on_the_node_and_reclaimed(
    real_node: RealNode,
    node_images: list[str],
    node_volumes: ProvisionerProcess,
    node_namespace: str,
) -> None:
    ns = node_namespace
    storage_class = _get(real_node, "storageclass", "headroom-local")
    assert storage_class is not None
    default = storage_class["metadata"]["annotations"]
    assert default["storageclass.kubernetes.io/is-default-class"] == "true"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    done = real_node.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(claim))
    assert done.returncode == 0, done.stderr
    bound = _wait(
        "claim bound",
        lambda: (
            (c := _get(real_node, "-n", ns, "pvc", "data"))
            and c["status"].get("phase") == "Bound"
            and c
        ),
    )
    assert bound["spec"]["storageClassName"] == "headroom-local"  # the default, assigned
    volume = _get(real_node, "pv", bound["spec"]["volumeName"])
    assert volume is not None
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    local = Path(volume["spec"]["hostPath"]["path"])
    assert local.is_dir() and local.name == bound["metadata"]["uid"]
    # never inside a git checkout: the agent would take that repository for its workspace's
    assert not any((parent / ".git").exists() for parent in local.parents)

    container = {
        "image": AGENT_IMAGE,
        "command": ["sh", "-c", "id -u > /data/who && echo written"],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    pod = real_node.run_pod(ns, real_node.pod_manifest("writer", container, volumes=volumes))
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert (local / "who").read_text().strip() == "10001"  # the image's non-root user

    real_node.kubectl("-n", ns, "delete", "pod", "writer", "--wait=true")
    real_node.kubectl("-n", ns, "delete", "pvc", "data", "--wait=false")
    _wait(
        "released volume deleted",
        lambda: _get(real_node, "pv", volume["metadata"]["name"]) is None,
    )
    assert not local.exists()
