"""kwok nodes of a test's own, and their failure as the control plane sees it.

The local cluster's kwok controller manages every node labelled type=kwok: it keeps the node
Ready and plays the kubelet of its pods (Running, deletions completed). A node relabelled
away from type=kwok has no kubelet any more; marking its Ready condition Unknown is what the
node lifecycle controller itself writes once a kubelet has been silent for its grace period
(3m20s on this cluster, too long for a test). From there the real controllers take over:
the node lifecycle controller taints it node.kubernetes.io/unreachable:NoExecute, taint-based
eviction deletes the pods that do not tolerate it (they stay Terminating: no kubelet confirms),
and the pod garbage collector removes them once the node is tainted out-of-service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from tests.support.operator import wait_for

KWOK = {"type": "kwok"}
CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110"}
OUT_OF_SERVICE = {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown",
                  "effect": "NoExecute"}  # fmt: skip


def create_node(core: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    core.create_node(
        {
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    **KWOK,
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    **labels,
                },
            },
            "status": {"capacity": CAPACITY, "allocatable": CAPACITY},
        }
    )
    wait_for(f"node {name} Ready", lambda: ready(core, name) == "True", timeout=60)


def ready(core: client.CoreV1Api, name: str) -> str | None:
    node = core.read_node(name)
    for c in node.status.conditions or []:
        if c.type == "Ready":
            return str(c.status)
    return None


def lose(core: client.CoreV1Api, name: str) -> None:
    """The node's kubelet goes silent, and the node lifecycle controller says so."""
    core.patch_node(name, {"metadata": {"labels": {"type": "kwok-lost"}}})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    unknown = {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }

    # kwok may write one last heartbeat after the relabel: repeat until Unknown holds.
    def unknown_holds() -> bool:
        core.patch_node_status(name, {"status": {"conditions": [unknown]}})
        return ready(core, name) == "Unknown"

    wait_for(f"node {name} Ready=Unknown", unknown_holds, timeout=30, interval=1)


def tainted(core: client.CoreV1Api, name: str, key: str) -> bool:
    return any(t.key == key for t in core.read_node(name).spec.taints or [])


def fence(core: client.CoreV1Api, name: str) -> None:
    """An administrator's word that the node is down for good (Kubernetes' out-of-service
    taint): the pod garbage collector may now remove its terminating pods."""
    taints = [
        {"key": t.key, "value": t.value, "effect": t.effect}
        for t in core.read_node(name).spec.taints or []
    ]
    core.patch_node(name, {"spec": {"taints": [*taints, OUT_OF_SERVICE]}})


def come_back(core: client.CoreV1Api, name: str) -> None:
    """The node's kubelet is back: kwok manages the node again (Ready, and it completes the
    deletions of its pods as a kubelet confirms them)."""
    core.patch_node(name, {"metadata": {"labels": KWOK}})


def pods_on(core: client.CoreV1Api, namespace: str, node: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, field_selector=f"spec.nodeName={node}").items)
