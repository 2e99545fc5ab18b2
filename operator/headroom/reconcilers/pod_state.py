"""What an agent pod's status says, read from its JSON: how its containers ended, when the
agent started and stopped, and a container that cannot start."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from headroom.contract import crd
from headroom.contract import pod as contract
from headroom.contract.scrub import scrub
from headroom.core.durations import parse_time
from headroom.core.outcome import ContainerExit

JSON = dict[str, Any]

# A container that cannot start says so in its waiting reason; the session's Ready
# condition names it instead of leaving the user to find the pod.
START_PROBLEMS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def clone_exit(pod: JSON) -> ContainerExit | None:
    """The `clone` init container's terminated state, if it has ended."""
    return init_exit(pod, contract.CLONE_CONTAINER)


def init_exit(pod: JSON, container: str) -> ContainerExit | None:
    """An init container's terminated state, if it has ended."""
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if cs.get("name") == container:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                return ContainerExit(
                    term.get("exitCode"), term.get("reason", ""), term.get("message")
                )
    return None


def start_problem(pod: JSON) -> tuple[str, str] | None:
    """(reason, message) when a container of the pod waits on something that will not fix
    itself soon: a bad image, a missing Secret or ConfigMap key."""
    status = pod.get("status") or {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in START_PROBLEMS:
            message = scrub(str(waiting.get("message") or ""))[: crd.START_PROBLEM_CHARS]
            return str(waiting["reason"]), f"container {cs.get('name')}: {message}"
    return None


def container_exit(pod: JSON) -> ContainerExit | bool | None:
    """The agent container's terminated state; True while it still runs; None if the pod ended
    without one (e.g. deleted before start, or evicted)."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == "agent":
            term = (cs.get("state") or {}).get("terminated")
            if term:
                return ContainerExit(
                    term.get("exitCode"), term.get("reason", ""), term.get("message")
                )
    if status.get("phase") in {"Succeeded", "Failed"}:
        return None
    return True


def settled(pod: JSON) -> bool:
    """The pod has ended or is being deleted: a state it never leaves, so a copy of it from a
    watch is as good as a fresh read."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return True
    return container_exit(pod) is not True


def started_at(pod: JSON | None) -> datetime | None:
    """When the agent container started (its running or terminated state says)."""
    for cs in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") != contract.AGENT_CONTAINER:
            continue
        state = cs.get("state") or {}
        for key in ("terminated", "running"):
            started = (state.get(key) or {}).get("startedAt")
            if started:
                return parse_time(started)
    return None


def terminated_at(pod: JSON | None) -> datetime | None:
    if not pod:
        return None
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("finishedAt"):
            return parse_time(term["finishedAt"])
    return None


# Why the control plane deletes a pod whose node stopped answering (the pod's DisruptionTarget
# condition): taint-based eviction from a NotReady or unreachable node, and the pod garbage
# collector (the node deleted, or tainted node.kubernetes.io/out-of-service).
NODE_LOSS_REASONS = frozenset({"DeletionByTaintManager", "DeletionByPodGC"})


def lost_node(pod: JSON | None) -> str | None:
    """The pod's node, when the control plane is removing the pod because that node is lost;
    None otherwise. Such a pod still counts as live: its containers may run on for as long
    as the node is cut off, so it is gone only once the API server no longer has it."""
    for c in ((pod or {}).get("status") or {}).get("conditions") or []:
        if (
            c.get("type") == "DisruptionTarget"
            and c.get("status") == "True"
            and c.get("reason") in NODE_LOSS_REASONS
        ):
            return str(((pod or {}).get("spec") or {}).get("nodeName") or "unknown")
    return None
