"""Events about a pod, recorded as a kubelet records them (source component `kubelet`, the
node as host), so `kubectl describe pod` and `kubectl get events` explain a pod that waits
or fails: a kubelet puts the reason of a failed volume mount only there, not in the status.
Best effort: an event that cannot be written is logged and dropped, never fatal."""

from __future__ import annotations

from typing import Any

from headroom_dev.executor.kube import Kube, log
from headroom_dev.executor.status import timestamp

JSON = dict[str, Any]
NORMAL, WARNING = "Normal", "Warning"


def field_path(container: str, init: bool) -> str:
    """How a kubelet names the container an event is about."""
    return f"spec.{'initContainers' if init else 'containers'}{{{container}}}"


class Recorder:
    def __init__(self, kube: Kube, node: str) -> None:
        self.kube = kube
        self.node = node

    def record(
        self, pod: JSON, kind: str, reason: str, message: str, fieldpath: str | None = None
    ) -> None:
        meta = pod["metadata"]
        now = timestamp()
        involved: JSON = {
            "apiVersion": "v1", "kind": "Pod", "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta["uid"],
        }  # fmt: skip
        if fieldpath:
            involved["fieldPath"] = fieldpath
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": involved,
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.kube.call(self.kube.core.create_namespaced_event, meta["namespace"], body)
        except Exception as exc:  # a namespace being deleted refuses new events
            log.debug("event %s for %s/%s dropped: %s", reason, meta["namespace"],
                      meta["name"], exc)  # fmt: skip
