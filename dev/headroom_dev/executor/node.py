"""The executor's Node: registered like a kubelet registers itself, kept alive by renewing
its Lease in kube-node-lease (and re-posting Ready), so the node-lifecycle controller never
marks it NotReady while the executor runs."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headroom_dev.executor.kube import SMP, Kube, log

JSON = dict[str, Any]
LABEL = "headroom.dev/executor"
TAINT: JSON = {"key": LABEL, "value": "true", "effect": "NoSchedule"}
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # kubelet's default
RENEW_SECONDS = 10  # kubelet renews at a quarter of the lease
STATUS_SECONDS = 60


def _version() -> str:
    try:
        return importlib.metadata.version("headroom")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


__version__ = _version()


def host_memory() -> str:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return f"{line.split()[1]}Ki"
    return "8Gi"


@dataclass
class NodeSpec:
    name: str
    ip: str = "127.0.0.1"
    cpu: str = field(default_factory=lambda: str(os.cpu_count() or 2))
    memory: str = field(default_factory=host_memory)
    pods: str = "32"
    labels: dict[str, str] = field(default_factory=dict)


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    def __init__(self, kube: Kube, spec: NodeSpec) -> None:
        self.kube = kube
        self.spec = spec
        self.since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.uid = ""

    def register(self) -> None:
        name = self.spec.name
        labels = {
            LABEL: "true",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                platform.machine(), platform.machine()
            ),
            **self.spec.labels,
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": [TAINT]},
        }
        if not self.kube.create(self.kube.core.create_node, body):
            # Re-registration after a restart: make sure our label and taint are there,
            # without dropping taints the node controller manages.
            node = self.kube.call(self.kube.core.read_node, name)
            taints = node["spec"].get("taints") or []
            if not any(t["key"] == LABEL for t in taints):
                taints.append(TAINT)
            patch = {"metadata": {"labels": labels}, "spec": {"taints": taints}}
            self.kube.call(self.kube.core.patch_node, name, patch, _content_type=SMP)
        self.uid = self.kube.call(self.kube.core.read_node, name)["metadata"]["uid"]
        self.post_status()
        self.renew_lease()
        log.info("node %s registered (label %s=true, taint %s:NoSchedule)", name, LABEL, LABEL)

    def post_status(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def condition(kind: str, status: str, reason: str, message: str) -> JSON:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self.since,
            }

        resources = {"cpu": self.spec.cpu, "memory": self.spec.memory, "pods": self.spec.pods}
        status = {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                condition(
                    "Ready", "True", "KubeletReady", "headroom dev executor is posting ready status"
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.spec.ip},
                {"type": "Hostname", "address": self.spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": platform.machine(),
                "bootID": "",
                "containerRuntimeVersion": f"headroom-executor://{__version__}",
                "kernelVersion": platform.release(),
                "kubeProxyVersion": "",
                "kubeletVersion": f"headroom-executor-{__version__}",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "headroom dev executor (local processes)",
                "systemUUID": "",
            },
        }
        self.kube.call(
            self.kube.core.patch_node_status, self.spec.name, {"status": status}, _content_type=SMP
        )

    def renew_lease(self) -> None:
        name = self.spec.name
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_time(),
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NAMESPACE,
                # As a kubelet does: the Lease goes away with the Node.
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uid}
                ],
            },
            "spec": spec,
        }
        leases = self.kube.leases
        if not self.kube.create(leases.create_namespaced_lease, LEASE_NAMESPACE, body):
            self.kube.call(
                leases.patch_namespaced_lease, name, LEASE_NAMESPACE, {"spec": spec},
                _content_type="application/merge-patch+json",
            )  # fmt: skip

    def heartbeat(self, stop: threading.Event) -> None:
        last_status = 0.0
        elapsed = 0.0
        while not stop.wait(RENEW_SECONDS):
            elapsed += RENEW_SECONDS
            try:
                self.renew_lease()
                if elapsed - last_status >= STATUS_SECONDS:
                    self.post_status()
                    last_status = elapsed
            except Exception as exc:
                log.warning("node heartbeat failed: %s", exc)
                try:
                    self.register()  # the node was deleted, or the cluster recreated
                except Exception as again:
                    log.warning("node re-registration failed: %s", again)

    def remove(self) -> None:
        self.kube.get(self.kube.core.delete_node, self.spec.name)
        self.kube.get(self.kube.leases.delete_namespaced_lease, self.spec.name, LEASE_NAMESPACE)
