"""Pod status as a kubelet writes it (pkg/kubelet/status): phase, conditions, the single
container's state, IPs and times. Pure builders of strategic-merge patches for the status
subresource; conditions keep their lastTransitionTime while their status does not change."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

# kubelet: MaxContainerTerminationMessageLength; it keeps the *last* 4096 bytes of the file.
MAX_MESSAGE_BYTES = 4 * 1024
# kubelet: FallbackToLogsOnError reads at most 80 lines / 2048 bytes from the end of the log.
MAX_LOG_LINES, MAX_LOG_BYTES = 80, 2 * 1024
CONTAINER_ID_SCHEME = "headroom-executor"


def timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A process killed by signal N reads as 128+N, as container runtimes report it."""
    return 128 - returncode if returncode < 0 else returncode


def signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return None


def read_tail(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except FileNotFoundError:
        return b""


def termination_message(message_file: str, log_file: str, policy: str, failed: bool) -> str:
    data = read_tail(message_file, MAX_MESSAGE_BYTES)
    if not data and failed and policy == "FallbackToLogsOnError":
        lines = read_tail(log_file, MAX_LOG_BYTES).splitlines(keepends=True)
        data = b"".join(lines[-MAX_LOG_LINES:])
    return data.decode(errors="replace")


def _condition(pod: JSON, kind: str, status: bool, reason: str | None = None,
               message: str | None = None) -> JSON:  # fmt: skip
    value = "True" if status else "False"
    old = next((c for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == kind), None)  # fmt: skip
    since = old["lastTransitionTime"] if old and old.get("status") == value else timestamp()
    cond: JSON = {
        "type": kind,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": since,
        "observedGeneration": pod["metadata"].get("generation"),
        "reason": reason,
        "message": message,
    }
    return cond


def _base(pod: JSON, ip: str, phase: str) -> JSON:
    old = pod.get("status") or {}
    return {
        "phase": phase,
        "observedGeneration": pod["metadata"].get("generation"),
        "hostIP": ip,
        "hostIPs": [{"ip": ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": old.get("startTime") or timestamp(),
    }


def _container(pod: JSON, state: JSON, *, ready: bool, started: bool, cid: str | None) -> JSON:
    spec = pod["spec"]["containers"][0]
    status: JSON = {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
    }
    if cid:
        status["containerID"] = f"{CONTAINER_ID_SCHEME}://{cid}"
    return status


def waiting(pod: JSON, ip: str, reason: str, message: str | None = None) -> JSON:
    """Pending: the sandbox exists, the container does not run yet."""
    name = pod["spec"]["containers"][0]["name"]
    unready = f"containers with unready status: [{name}]"
    status = _base(pod, ip, "Pending")
    status["conditions"] = [
        _condition(pod, "PodReadyToStartContainers", True),
        _condition(pod, "Initialized", True),
        _condition(pod, "Ready", False, "ContainersNotReady", unready),
        _condition(pod, "ContainersReady", False, "ContainersNotReady", unready),
        _condition(pod, "PodScheduled", True),
    ]
    state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    status["containerStatuses"] = [_container(pod, state, ready=False, started=False, cid=None)]
    return {"status": status}


def running(pod: JSON, ip: str, started_at: str, cid: str) -> JSON:
    status = _base(pod, ip, "Running")
    status["conditions"] = [
        _condition(pod, "PodReadyToStartContainers", True),
        _condition(pod, "Initialized", True),
        _condition(pod, "Ready", True),
        _condition(pod, "ContainersReady", True),
        _condition(pod, "PodScheduled", True),
    ]
    state = {"running": {"startedAt": started_at}}
    status["containerStatuses"] = [_container(pod, state, ready=True, started=True, cid=cid)]
    return {"status": status}


def terminated(
    pod: JSON,
    ip: str,
    *,
    code: int,
    reason: str,
    message: str,
    started_at: str | None,
    cid: str | None,
    node_shutdown: bool = False,
) -> JSON:
    """restartPolicy Never: the pod is over once its only container is. A pod stopped by
    the executor's own shutdown ends Failed, as a kubelet's graceful node shutdown ends it."""
    phase = "Succeeded" if code == 0 and not node_shutdown else "Failed"
    done = "PodCompleted" if phase == "Succeeded" else "PodFailed"
    status = _base(pod, ip, phase)
    if node_shutdown:
        status["reason"] = "Terminated"
        status["message"] = "Pod was terminated in response to imminent node shutdown."
    status["conditions"] = [
        _condition(pod, "PodReadyToStartContainers", False),
        _condition(pod, "Initialized", True),
        _condition(pod, "Ready", False, done),
        _condition(pod, "ContainersReady", False, done),
        _condition(pod, "PodScheduled", True),
    ]
    now = timestamp()
    term: JSON = {
        "exitCode": code,
        "reason": reason,
        "startedAt": started_at or now,
        "finishedAt": now,
    }
    if message:
        term["message"] = message
    if cid:
        term["containerID"] = f"{CONTAINER_ID_SCHEME}://{cid}"
    state = {"terminated": term}
    status["containerStatuses"] = [_container(pod, state, ready=False, started=False, cid=cid)]
    return {"status": status}
