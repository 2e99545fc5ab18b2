"""First placement through the real apiserver: accounts, pods, PVCs, fallback, maxSessions."""

from __future__ import annotations

import re
import threading

import pytest
from tests.support.operator import Scene, wait_for

from headroom.contract.termination import Outcome

pytestmark = pytest.mark.integration

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_session_gets_uuid_pod_and_workspace_on_best_account(scene: Scene, operator) -> None:
    scene.account("low", priority=1)
    scene.account("high", priority=10)
    scene.session("s1", maxTurns=50, model="claude-sonnet")
    status = scene.wait_running("s1", attempt=1)
    assert status["account"] == "high"
    assert status["authPath"] == "primary"
    assert UUID.match(status["claudeSessionId"])
    pod = scene.pod(status["podName"])
    assert pod is not None
    spec = pod.spec
    container = spec.containers[0]
    env = {e.name: e for e in container.env}
    assert container.command == ["headroom", "agent"]
    assert env["HEADROOM_SESSION_ID"].value == status["claudeSessionId"]
    assert env["HEADROOM_EXPECT_TRANSCRIPT"].value == "false"  # first attempt: --session-id
    assert env["HEADROOM_MAX_TURNS"].value == "50"
    assert env["HEADROOM_MODEL"].value == "claude-sonnet"
    # The credential is no variable: the init container stages it from the runtime Secret.
    assert (
        not env["CLAUDE_CODE_OAUTH_TOKEN"].value
        and env["CLAUDE_CODE_OAUTH_TOKEN"].value_from is None
    )
    assert env["HEADROOM_STAGED_CREDENTIAL_TYPE"].value == "OAuthToken"
    (staging,) = spec.init_containers
    assert staging.name == "credential"
    volumes = {v.name: v for v in spec.volumes}
    source = volumes["headroom-credential-source"].secret
    assert source.secret_name == scene.status("claudeaccounts", "high")["runtimeSecretName"]
    assert spec.automount_service_account_token is False
    assert spec.security_context.run_as_non_root is True
    assert spec.restart_policy == "Never"
    assert container.resources.requests["cpu"] and container.resources.requests["memory"]
    mounts = {m.mount_path: m for m in container.volume_mounts}
    assert "/workspace" in mounts
    config_dir = env["CLAUDE_CONFIG_DIR"].value
    assert mounts[config_dir].name == "claude-config"  # writable emptyDir per pod
    assert mounts[config_dir + "/projects"].sub_path == ".claude-projects"  # transcripts on PVC
    claim = scene.core.read_namespaced_persistent_volume_claim("s1-workspace", scene.ns)
    assert claim.metadata.owner_references[0].kind == "AgentSession"
    assert scene.condition("agentsessions", "s1", "Scheduled")["status"] == "True"
    wait_for(
        "account activeSessions",
        lambda: scene.status("claudeaccounts", "high").get("activeSessions") == 1,
    )


def test_completed_run_succeeds_with_result(scene: Scene, operator) -> None:
    scene.account("alice")
    scene.session("s1")
    status = scene.wait_running("s1")
    scene.finish_pod(status["podName"], Outcome.COMPLETED, turns=7, cost_usd=0.42)
    done = scene.wait_phase("agentsessions", "s1", "Succeeded")
    result = done["result"]
    assert result.pop("durationSeconds") >= 0  # from the pod's own start and finish times
    assert result == {
        "outcome": "completed",
        "reason": "Completed",
        "turns": 7,
        "costUSD": 0.42,
        "detail": "the run finished",
    }
    assert scene.condition("agentsessions", "s1", "Completed")["status"] == "True"
    assert scene.condition("agentsessions", "s1", "Ready")["reason"] == "Completed"
    wait_for(
        "slot released", lambda: scene.status("claudeaccounts", "alice").get("activeSessions") == 0
    )


def test_fallback_used_only_when_primary_pool_is_empty(scene: Scene, operator) -> None:
    scene.account("alice", max_sessions=1)
    scene.account("team-api", kind="APIKey", labels={"type": "api-key"}, max_sessions=5)
    fallback = {"accountSelector": {"matchLabels": {"type": "api-key"}}}
    scene.session("first", fallback=fallback)
    assert scene.wait_running("first")["account"] == "alice"
    scene.session("second", fallback=fallback)
    second = scene.wait_running("second")
    assert (second["account"], second["authPath"]) == ("team-api", "fallback")
    pod = scene.pod(second["podName"])
    assert pod is not None
    env = {e.name: e for e in pod.spec.containers[0].env}
    assert env["HEADROOM_STAGED_CREDENTIAL_TYPE"].value == "APIKey"
    # Set empty (the API server stores that as a bare name): no other login can slip in.
    for name in ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"):
        assert not env[name].value and env[name].value_from is None
    scene.session("no-fallback")  # no spec.fallback: it must wait rather than use the key
    waiting = scene.wait_phase("agentsessions", "no-fallback", "Waiting")
    assert (
        "alice is full (1/1)"
        in scene.condition("agentsessions", "no-fallback", "Scheduled")["message"]
    )
    assert waiting.get("account") is None


def test_max_sessions_holds_when_100_sessions_arrive_at_once(scene: Scene, operator) -> None:
    for name, cap in (("a", 10), ("b", 15), ("c", 5)):
        scene.account(name, max_sessions=cap)
    wait_for(
        "accounts verified",
        lambda: all(scene.status("claudeaccounts", n).get("phase") == "Available" for n in "abc"),
    )
    threads = [threading.Thread(target=scene.session, args=(f"s{i:03d}",)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    def settled() -> dict[str, int] | None:
        items = scene.sessions()
        phases = [i.get("status", {}).get("phase") for i in items]
        if phases.count("Running") == 30 and phases.count("Waiting") == 70:
            counts: dict[str, int] = {}
            for i in items:
                if i["status"].get("phase") == "Running":
                    counts[i["status"]["account"]] = counts.get(i["status"]["account"], 0) + 1
            return counts
        return None

    counts = wait_for("30 Running and 70 Waiting", settled, timeout=120)
    assert counts == {"a": 10, "b": 15, "c": 5}
    live = scene.live_pods()
    per_account: dict[str, int] = {}
    for p in live:
        acct = p.metadata.annotations["headroom.dev/account"]
        per_account[acct] = per_account.get(acct, 0) + 1
    assert per_account == {"a": 10, "b": 15, "c": 5}
    assert len({p.metadata.annotations["headroom.dev/session"] for p in live}) == len(live) == 30
