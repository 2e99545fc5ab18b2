"""A pod whose node is lost: it stays live until the API server removes it (never two pods
for one session), the session says why it waits, and the pod's end moves it exactly once,
without counting a failure or a swap."""

from __future__ import annotations

from typing import Any

from tests.reconcilers.conftest import NS, World

from headroom.reconcilers.pod_state import lost_node

TAINT_EVICTION = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "DeletionByTaintManager",
    "message": "Taint manager: deleting due to NoExecute taint",
}


def on_lost_node(pod: dict[str, Any], reason: str = "DeletionByTaintManager") -> None:
    """What the control plane leaves on a pod of an unreachable node: the agent still
    'running' (no kubelet reports otherwise), a DisruptionTarget condition, a deletion."""
    pod["spec"]["nodeName"] = "node-a"
    pod["metadata"]["deletionTimestamp"] = "2026-12-01T12:05:00Z"
    pod["status"] = {
        "phase": "Running",
        "conditions": [{**TAINT_EVICTION, "reason": reason}, {"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": "agent", "state": {"running": {"startedAt": "2026-12-01T12:00:00Z"}}}
        ],
    }


def test_only_the_control_planes_own_reasons_mean_a_lost_node() -> None:
    pod: dict[str, Any] = {"spec": {"nodeName": "n1"}, "status": {"conditions": [TAINT_EVICTION]}}
    assert lost_node(pod) == "n1"
    preempted = {**TAINT_EVICTION, "reason": "PreemptionByScheduler"}
    assert lost_node({"spec": {}, "status": {"conditions": [preempted]}}) is None
    assert lost_node({"status": {"conditions": [{**TAINT_EVICTION, "status": "False"}]}}) is None
    assert lost_node(None) is None


async def test_a_pod_on_a_lost_node_is_waited_for_then_replaced_exactly_once(world: World) -> None:
    world.account("alice", max_sessions=1)
    world.account("bob", max_sessions=1)
    world.session("s1")
    await world.reconcile("s1")
    on_lost_node(world.pod("s1-1"))
    for _ in range(3):  # every pod event of the eviction: nothing new is created
        await world.reconcile("s1")
    assert world.kube.obj("pods", "s1-2") is None
    status = world.status("s1")
    assert (status["phase"], status["evictionReason"]) == ("Running", "NodeLost")
    ready = world.condition("s1", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NodeLost")
    assert "node node-a of pod s1-1 is lost" in ready["message"]
    assert [e[:2] for e in world.events if e[1] == "NodeLost"] == [("Warning", "NodeLost")]
    assert world.rt.ledger.active((NS, "alice")) == 1  # the slot stays held

    # The API server removed the pod: one new attempt, on the same account.
    del world.kube.objects[("pods", "s1-1")]
    await world.reconcile("s1")
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["phase"], status["attempt"], status["account"]) == ("Running", 2, "alice")
    assert (status["failures"], status["swapCount"]) == (0, 0)
    assert status["lastOutcome"]["outcome"] == "evicted"
    assert "evictionReason" not in status
    assert world.kube.obj("pods", "s1-3") is None
    created = [n for verb, plural, n in world.kube.verbs() if (verb, plural) == ("create", "pods")]
    assert created == ["s1-1", "s1-2"]


async def test_a_pod_the_garbage_collector_failed_reads_as_a_lost_node(world: World) -> None:
    """The operator missed the eviction (it was down): the pod garbage collector's own mark
    (phase Failed, DisruptionTarget DeletionByPodGC) still says the node, not the agent."""
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    on_lost_node(world.pod("s1-1"), reason="DeletionByPodGC")
    world.pod("s1-1")["status"]["phase"] = "Failed"
    await world.reconcile("s1")
    status = world.status("s1")
    assert (status["attempt"], status["failures"]) == (2, 0)
    assert status["lastOutcome"]["outcome"] == "evicted"


async def test_a_pod_in_phase_unknown_is_live(world: World) -> None:
    world.account("alice")
    world.session("s1")
    await world.reconcile("s1")
    world.pod("s1-1")["status"] = {"phase": "Unknown"}
    await world.reconcile("s1")
    assert world.kube.obj("pods", "s1-2") is None
    assert world.status("s1")["phase"] == "Running"
