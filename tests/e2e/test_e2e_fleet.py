"""Sessions run for real: operator -> pod -> executor -> runner -> Claude Code -> stand-in."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.support.e2e import Fleet
from tests.support.executor import ExecutorProcess
from tests.support.operator import OperatorProcess, wait_for

pytestmark = pytest.mark.e2e

# Five real CLI runs share two cores with other test sessions: a failure bound, not a target.
RUN_TIMEOUT = 180


def test_five_sessions_complete_each_on_its_own_accounts_credential(
    fleet: Fleet, operator: OperatorProcess, e2e_executor: ExecutorProcess
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
    # The pods ended as a kubelet reports a finished container: exit 0, Succeeded.
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
    # termination message, a pod status, an Event, or the operator's, executor's or
    # stand-in's log.
    pod_dirs = e2e_executor.state_dir / e2e_executor.node_name / "pods"
    outputs = [log.read_text(errors="replace") for log in pod_dirs.glob("*/container.log")]
    assert len(outputs) >= 5
    visible = "".join(outputs) + operator.log_text() + e2e_executor.log_text()
    visible += fleet.sandbox.log() + str(scene.core.list_namespaced_pod(scene.ns).items)
    visible += "".join(f"{e.reason} {e.message}" for e in scene.events())
    assert fleet.leaked(visible) == []
