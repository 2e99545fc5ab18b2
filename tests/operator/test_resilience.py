"""Restarts, drills, deletion, bad input, and the records the operator leaves behind."""

from __future__ import annotations

import json

import pytest
from tests.support.operator import Scene, in_seconds, wait_for

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

CANARY = "sk-ant-oat01-CANARY-do-not-leak-7f3a9c"


def test_operator_killed_mid_failover_leaves_exactly_one_live_pod(scene: Scene, operator) -> None:
    scene.account("alice", max_sessions=3, priority=5)
    scene.account("bob", max_sessions=3)
    names = [scene.session(f"s{i}")["metadata"]["name"] for i in range(3)]
    first = {n: scene.wait_running(n, attempt=1) for n in names}
    assert {s["account"] for s in first.values()} == {"alice"}
    for n in names:
        scene.finish_pod(
            first[n]["podName"], Outcome.WALLED, window="five_hour", resets_at=in_seconds(3600)
        )
    operator.kill()  # somewhere in the middle of three failovers
    operator.start()
    for n in names:
        moved = scene.wait_running(n, attempt=2)
        assert moved["account"] == "bob"
    live = scene.live_pods()
    sessions = [p.metadata.annotations["headroom.dev/session"] for p in live]
    assert sorted(sessions) == sorted(names), [p.metadata.name for p in live]
    # and the restarted operator rebuilt its ledger: bob is full, a new session waits
    scene.session("late")
    scene.wait_phase("agentsessions", "late", "Waiting")
    assert "bob is full (3/3)" in scene.condition("agentsessions", "late", "Scheduled")["message"]


def test_restart_rebuilds_ledger_so_max_sessions_holds(scene: Scene, operator) -> None:
    scene.account("alice", max_sessions=2)
    for i in range(2):
        scene.wait_running(scene.session(f"s{i}")["metadata"]["name"])
    operator.stop()
    operator.start()
    scene.session("third")
    scene.wait_phase("agentsessions", "third", "Waiting")
    assert len(scene.live_pods()) == 2


def test_drill_moves_sessions_and_records_how_long_it_took(scene: Scene, operator) -> None:
    scene.account("alice", priority=5)
    scene.account("bob")
    s = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    assert s["account"] == "alice"
    scene.patch(
        "claudeaccounts", "alice", {"metadata": {"annotations": {"headroom.dev/drill": "drill-1"}}}
    )
    # the operator deletes the pod; a kubelet would then report it gone
    wait_for(
        "drill pod deletion",
        lambda: (p := scene.pod(s["podName"])) is None or p.metadata.deletion_timestamp,
    )
    if scene.pod(s["podName"]) is not None:  # an unscheduled pod may already be gone
        scene.core.delete_namespaced_pod(s["podName"], scene.ns, grace_period_seconds=0)
    moved = scene.wait_running("s1", attempt=2)
    assert moved["account"] == "bob"
    assert moved["swaps"][-1]["reason"] == "Drill"
    drill = wait_for(
        "drill completed",
        lambda: (
            (d := scene.status("claudeaccounts", "alice").get("drill", {})).get("completedAt") and d
        ),
    )
    assert drill["value"] == "drill-1" and drill["sessionsMoved"] == 1
    assert drill["moveSeconds"] >= 0
    assert scene.status("claudeaccounts", "alice")["phase"] == "Walled"
    reasons = {e.reason for e in scene.events()}
    assert {"DrillStarted", "DrillCompleted"} <= reasons


def test_deleting_a_session_removes_its_pod_and_workspace(scene: Scene, operator) -> None:
    scene.account("alice")
    s = scene.wait_running(scene.session("s1")["metadata"]["name"])
    scene.custom.delete_namespaced_custom_object(
        "headroom.dev", "v1alpha1", scene.ns, "agentsessions", "s1"
    )
    # garbage collection by the real kube-controller-manager (ownerReferences)
    wait_for(
        "pod collected",
        lambda: (pod := scene.pod(s["podName"])) is None or pod.metadata.deletion_timestamp,
        timeout=60,
    )

    def claim_gone() -> bool:
        claims = scene.core.list_namespaced_persistent_volume_claim(scene.ns).items
        return all(c.metadata.deletion_timestamp for c in claims)

    wait_for("claim collected", claim_gone, timeout=60)
    wait_for(
        "slot released", lambda: scene.status("claudeaccounts", "alice").get("activeSessions") == 0
    )


def test_missing_secret_is_a_condition_not_a_crash(scene: Scene, operator) -> None:
    scene.custom.create_namespaced_custom_object(
        "headroom.dev", "v1alpha1", scene.ns, "claudeaccounts",
        {"apiVersion": "headroom.dev/v1alpha1", "kind": "ClaudeAccount",
         "metadata": {"name": "ghost", "labels": {"tier": "max"}},
         "spec": {"credentials": {"secretRef": {"name": "ghost-claude"}, "type": "OAuthToken"}}},
    )  # fmt: skip
    cond = wait_for(
        "CredentialsValid=False",
        lambda: (
            (c := scene.condition("claudeaccounts", "ghost", "CredentialsValid")).get("status")
            == "False"
            and c
        ),
    )
    assert cond["reason"] == "SecretNotFound"
    assert "ghost-claude" in cond["message"]
    scene.session("s1")
    scene.wait_phase("agentsessions", "s1", "Waiting")
    scene.secret("ghost-claude", {"wrong": "value"})
    cond = wait_for(
        "KeyNotFound",
        lambda: (
            (c := scene.condition("claudeaccounts", "ghost", "CredentialsValid")).get("reason")
            == "KeyNotFound"
            and c
        ),
    )
    assert "'token'" in cond["message"] and "wrong" in cond["message"]
    scene.secret("ghost-claude", {"token": "now-valid"})
    scene.wait_phase("claudeaccounts", "ghost", "Available")
    assert scene.wait_running("s1")["account"] == "ghost"
    assert operator.alive()


def test_canary_secret_never_leaks_and_spec_is_never_written(scene: Scene, operator) -> None:
    scene.account("alice", token=CANARY, priority=5)
    scene.account("bob")
    s = scene.wait_running(scene.session("s1")["metadata"]["name"], attempt=1)
    scene.finish_pod(
        s["podName"],
        Outcome.AUTH_FAILED,
        evidence=f"401 for Bearer {CANARY}",
        detail=f"token {CANARY} rejected",
    )
    scene.wait_running("s1", attempt=2)
    scene.wait_phase("claudeaccounts", "alice", "AuthFailed")
    s = scene.status("agentsessions", "s1")
    scene.finish_pod(
        s["podName"],
        Outcome.WALLED,
        window="five_hour",
        resets_at=in_seconds(60),
        evidence=f"x-api-key: {CANARY}",
    )
    scene.wait_phase("agentsessions", "s1", "Waiting")
    everything = json.dumps([
        scene.get("claudeaccounts", "alice"), scene.get("claudeaccounts", "bob"),
        scene.get("agentsessions", "s1"),
        [e.to_dict() for e in scene.events()],
        [p.metadata.to_dict() for p in scene.core.list_namespaced_pod(scene.ns).items],
    ], default=str)  # fmt: skip
    assert CANARY not in everything
    assert "CANARY" not in everything
    assert CANARY not in operator.log_text()
    assert "CANARY" not in operator.log_text()
    for plural, name in (("claudeaccounts", "alice"), ("agentsessions", "s1")):
        obj = scene.get(plural, name)
        assert obj["metadata"]["generation"] == 1  # spec untouched
        writers = {
            (m["manager"], m.get("subresource", "")) for m in obj["metadata"]["managedFields"]
        }
        ours = {w for w in writers if w[1] == "status"}
        assert ours, writers
        assert all(sub == "status" for _, sub in writers - {w for w in writers if w[1] == ""}), (
            writers
        )
