"""Sessions run for real: operator -> pod -> kubelet and containerd -> runner -> Claude Code ->
stand-in."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.support.e2e import Fleet
from tests.support.operator import OperatorProcess, wait_for
from tests.support.realnode import RealNode

pytestmark = pytest.mark.e2e

# Five real CLI runs share two cores with other test sessions: a failure bound, not a target.
RUN_TIMEOUT = 180


def test_five_sessions_complete_each_on_its_own_accounts_credential(
    fleet: Fleet, operator: OperatorProcess, e2e_node: RealNode
) -> None:
    scene = fleet.scene
    names = [f"task-{i}" for i in range(5)]
    for name in names:
        scene.session(name, prompt=f"Say done for {name}.")
    for name in names:
        scene.wait_phase("agentsessions", name, "Succeeded", timeout=RUN_TIMEOUT)

    placed: Counter[str] = Counter()
    for name in names:
        status = scene.status("agentsessions", name)
        account, conversation = status["account"], status["claudeSessionId"]
        placed[account] += 1
        assert status["result"]["outcome"] == "completed"
        assert status["authPath"] == "primary"
        assert not status.get("swaps")
        # Every request of this conversation reached the stand-in with this account's
        # credential, and it answered.
        seen = fleet.requests(session=conversation)
        assert seen, f"{name}: the stand-in never saw conversation {conversation}"
        assert {r["credential"] for r in seen} == {account}, seen
        assert {r["result"] for r in seen} == {"ok"}, seen
    # maxSessions 2 on three accounts: five sessions need all of them.
    assert set(placed) == {"alice", "bob", "carol"}
    assert max(placed.values()) <= 2
    # Nothing reached the stand-in without a known credential or as an unknown call.
    assert all(r["credential"] for r in fleet.sandbox.requests())
    assert not fleet.requests(result="not_found")
    # The pods ended as a kubelet reports a finished container: exit 0, Succeeded (the
    # kubelet writes the pod's phase a moment after the container's state).
    wait_for(
        "every pod Succeeded",
        lambda: all(
            p.status.phase == "Succeeded" for p in scene.core.list_namespaced_pod(scene.ns).items
        ),
        timeout=60,
    )
    for pod in scene.core.list_namespaced_pod(scene.ns).items:
        term = pod.status.container_statuses[0].state.terminated
        assert pod.status.phase == "Succeeded" and term.exit_code == 0, pod.status
        assert '"outcome":"completed"' in term.message.replace(" ", "")
    wait_for(
        "accounts show no active sessions",
        lambda: all(scene.status("claudeaccounts", a).get("activeSessions") == 0 for a in placed),
        timeout=120,
    )

    # The tokens went into the pods' environment only: not into any pod's output, a
    # termination message, a pod status, an Event, or the operator's, kubelet's, containerd's
    # or stand-in's log.
    logs = [p for p in e2e_node.container_logs() if f"/{scene.ns}_" in str(p)]
    assert len(logs) >= 5
    outputs = [p.read_text(errors="replace") for p in [*logs, *e2e_node.log_files()]]
    visible = "".join(outputs) + operator.log_text()
    visible += fleet.sandbox.log() + str(scene.core.list_namespaced_pod(scene.ns).items)
    visible += "".join(f"{e.reason} {e.message}" for e in scene.events())
    assert fleet.leaked(visible) == []
