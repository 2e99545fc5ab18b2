"""Real work, end to end: a session clones a repository from a real git server with a token
from a Secret, the real CLI runs the scripted agent's tools in the clone, the account's window
fills between two tool calls, the session moves, and the resumed agent finds its earlier work
on disk, finishes and pushes. Around it: env from Secrets, an MCP server from a ConfigMap,
timeout, TTL, continueFrom and structured output."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.support.e2e import MARKER, Fleet
from tests.support.git_server import GitServer
from tests.support.mcp_server import MCP_SERVER
from tests.support.operator import OperatorProcess, wait_for
from tests.support.realnode import RealNode

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 240  # failure bounds for real CLI runs on a shared 2-core machine
UNATTENDED = {"permissionMode": "bypassPermissions"}
BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"


def bash(command: str, **expect: Any) -> dict[str, Any]:
    """A script step: the model runs one Bash command; its result must meet `expect`."""
    step: dict[str, Any] = {"name": "Bash", "input": {"command": command}}
    if expect:
        step["expect"] = expect
    return {"tools": [step]}


def _container_logs(node: RealNode, namespace: str) -> str:
    paths = [p for p in node.container_logs() if f"/{namespace}_" in str(p)]
    return "\n".join(p.read_text(errors="replace") for p in paths)


def _everything_written(fleet: Fleet, operator: OperatorProcess, node: RealNode) -> str:
    """Every place a secret must never reach: logs, pod specs, status, Events."""
    scene = fleet.scene
    pods = scene.core.list_namespaced_pod(scene.ns).items
    texts = [operator.log_text(), _container_logs(node, scene.ns)]
    texts += [p.read_text(errors="replace") for p in node.log_files()]
    texts += [json.dumps(scene.core.api_client.sanitize_for_serialization(p)) for p in pods]
    texts += [json.dumps(s) for s in scene.sessions()]
    texts += [f"{e.reason} {e.message}" for e in scene.events()]
    return "\n".join(texts)


def test_a_session_clones_works_moves_and_pushes(
    fleet: Fleet,
    git_server: GitServer,
    operator: OperatorProcess,
    e2e_node: RealNode,
) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    assert git_server.token is not None
    git_server.create_repo("app", {"calc.py": BROKEN, "README.md": "calc\n"})
    scene.secret("git-token", {"token": git_server.token})
    # No `cd`: Claude Code's Bash tool keeps its working directory from one call to the next.
    script = [
        bash("git -C app status && cat app/calc.py", contains="return a - b"),
        bash(
            "sed -i 's/a - b/a + b/' app/calc.py && git -C app commit -qam 'Fix add'"
            " && echo draft > app/NOTES.txt && git -C app remote get-url origin",
            notContains=git_server.token,
        ),
        {"wall": {"window": "five_hour", "resetInSeconds": 3600, "credential": "alice"}},
        # On another account, in another pod: the commit and the uncommitted file are there.
        bash(
            "git -C app log --format=%s -1; cat app/NOTES.txt; git -C app branch --show-current",
            contains="Fix add\ndraft\nfix/add",
        ),
        bash("git -C app push -q origin HEAD 2>&1; echo pushed $?", contains="pushed 0"),
        {"text": "Fixed add() in calc.py and pushed branch fix/add."},
    ]
    for name in ("alice", "bob", "carol"):
        sandbox.script_credential(name, script)
    repo = {"url": git_server.url("app"), "branch": "fix/add",
            "credentialsSecretRef": {"name": "git-token"}}  # fmt: skip
    scene.session("fix", prompt="Fix add() in calc.py", repos=[repo], claude=UNATTENDED)

    done = scene.wait_phase("agentsessions", "fix", "Succeeded", timeout=RUN_TIMEOUT)
    assert [(s["from"], s["to"], s["reason"]) for s in done["swaps"]] == [
        ("alice", "bob", "Walled")
    ]
    assert [a["outcome"] for a in done["attempts"]] == ["walled", "completed"]
    assert done["reposCloned"] is True
    assert done["result"]["summary"] == "Fixed add() in calc.py and pushed branch fix/add."
    assert done["result"]["turns"] >= 4 and done["result"]["costUSD"] > 0
    # Every scripted check held, on both accounts, and none failed.
    # (Step 1's result is checked twice: in the request the wall refused, and again when bob's
    # pod resumed the conversation and sent it anew.)
    checks = sandbox.tool_results()
    assert all(c["ok"] for c in checks), checks
    assert sorted({c["step"] for c in checks}) == [0, 1, 3, 4], checks
    assert {r["credential"] for r in fleet.requests() if r.get("result") == "ok"} == {
        "alice",
        "bob",
    }
    # The pushed branch, read back from the git server, has the fix.
    assert git_server.read_branch("app", "fix/add")["calc.py"] == FIXED
    assert git_server.read_branch("app", "main")["calc.py"] == BROKEN
    # The second pod had no clone init container: the clone happened once.
    second = scene.pod(done["podName"])
    assert second is not None
    assert [i.name for i in second.spec.init_containers] == ["credential"]
    assert git_server.token not in _everything_written(fleet, operator, e2e_node)


def test_a_clone_that_fails_says_why_and_is_retried(fleet: Fleet, git_server: GitServer) -> None:
    scene = fleet.scene
    git_server.create_repo("app", {"README.md": "x\n"})
    scene.secret("git-token", {"token": "not-the-token"})
    repo = {"url": git_server.url("app"), "credentialsSecretRef": {"name": "git-token"}}
    scene.session("noclone", repos=[repo], claude=UNATTENDED)
    ready = wait_for(
        "Ready=False RepoCloneFailed",
        lambda: (
            (c := scene.condition("agentsessions", "noclone", "Ready")).get("reason")
            == "RepoCloneFailed"
            and c
        ),
        timeout=RUN_TIMEOUT,
    )
    assert ready["status"] == "False" and "Authentication failed" in ready["message"], ready
    status = scene.status("agentsessions", "noclone")
    assert status["lastOutcome"]["outcome"] == "failed" and status["retryAt"]
    # Never a wall: the account is untouched.
    assert scene.status("claudeaccounts", status["account"])["phase"] == "Available"
    assert not fleet.requests(), "no agent ran: the clone comes first"


def test_a_secret_env_var_reaches_a_tool_and_no_log(
    fleet: Fleet, operator: OperatorProcess, e2e_node: RealNode
) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    value = f"ghp_{uuid.uuid4().hex}"
    digest = hashlib.sha256(value.encode()).hexdigest()
    scene.secret("team-secrets", {"token": value})
    script = [
        bash('printf %s "$GH_TOKEN" | sha256sum; echo "raw: $GH_TOKEN"', contains=digest),
        {"text": "Checked."},
    ]
    sandbox.script_credential("alice", script)
    env = [
        {
            "name": "GH_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "team-secrets", "key": "token"}},
        }
    ]
    scene.session("env", env=env, claude=UNATTENDED)
    scene.wait_phase("agentsessions", "env", "Succeeded", timeout=RUN_TIMEOUT)
    (check,) = sandbox.tool_results()
    assert check["ok"], check
    # The tool printed the raw value; the runner scrubbed it from the pod log.
    logs = _container_logs(e2e_node, scene.ns)
    assert "raw: [redacted]" in logs
    assert value not in _everything_written(fleet, operator, e2e_node)


def test_an_mcp_server_from_a_config_map_is_started_and_called(fleet: Fleet) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    config = {"mcpServers": {"shout": {"command": "python3", "args": ["-c", MCP_SERVER]}}}
    scene.core.create_namespaced_config_map(
        scene.ns, {"metadata": {"name": "tools"}, "data": {"mcp.json": json.dumps(config)}}
    )
    script = [
        {"tools": [{"name": "mcp__shout__shout", "input": {"text": "quiet please"},
                    "expect": {"contains": "QUIET PLEASE"}}]},
        {"text": "Shouted."},
    ]  # fmt: skip
    sandbox.script_credential("alice", script)
    claude = {**UNATTENDED, "mcpServers": {"configMapKeyRef": {"name": "tools", "key": "mcp.json"}}}
    scene.session("mcp", claude=claude)
    scene.wait_phase("agentsessions", "mcp", "Succeeded", timeout=RUN_TIMEOUT)
    (check,) = sandbox.tool_results()
    assert check["tool"] == "mcp__shout__shout" and check["ok"], check


def test_structured_output_fills_the_result(fleet: Fleet) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    sandbox.script_credential("alice", [{"structuredOutput": {"answer": "42", "files": 3}}])
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "files": {"type": "integer"}},
        "required": ["answer"],
    }
    scene.session("typed", claude={**UNATTENDED, "outputSchema": schema})
    done = scene.wait_phase("agentsessions", "typed", "Succeeded", timeout=RUN_TIMEOUT)
    assert done["result"]["structuredOutput"] == {"answer": "42", "files": 3}


def test_timeout_stops_a_session_that_runs_too_long(fleet: Fleet) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    # (A bare `sleep 120` is refused by Claude Code itself: "Blocked: standalone sleep".)
    work = {"command": "echo working; sleep 120; echo done", "timeout": 200000}
    script = [{"tools": [{"name": "Bash", "input": work}]}]
    sandbox.script_credential("alice", script)
    scene.session("slow", timeout="20s", claude=UNATTENDED)
    done = scene.wait_phase("agentsessions", "slow", "Failed", timeout=RUN_TIMEOUT)
    assert done["result"]["reason"] == "TimedOut", done
    assert scene.condition("agentsessions", "slow", "Ready")["reason"] == "TimedOut"
    assert done["attempts"][-1]["outcome"] == "evicted"
    assert 20 <= done["totals"]["durationSeconds"] < 90, done["totals"]


def test_ttl_removes_a_finished_session_and_its_workspace(fleet: Fleet) -> None:
    scene = fleet.scene
    scene.session("brief", ttlSecondsAfterFinished=3)
    scene.wait_phase("agentsessions", "brief", "Succeeded", timeout=RUN_TIMEOUT)
    wait_for(
        "session deleted after its TTL",
        lambda: not [s for s in scene.sessions() if s["metadata"]["name"] == "brief"],
        timeout=60,
    )


def test_continue_from_resumes_the_conversation_with_a_new_prompt(fleet: Fleet) -> None:
    scene = fleet.scene
    scene.session("first", prompt=f"Remember the word {MARKER}.")
    first = scene.wait_phase("agentsessions", "first", "Succeeded", timeout=RUN_TIMEOUT)
    before = len(fleet.requests())
    scene.session("second", prompt="Now say it back.", continueFrom={"name": "first"})
    second = scene.wait_phase("agentsessions", "second", "Succeeded", timeout=RUN_TIMEOUT)
    assert second["claudeSessionId"] == first["claudeSessionId"]
    assert second["workspaceClaim"] == first["workspaceClaim"]
    later = fleet.sandbox.requests()[before:]
    assert later and all(r["markerInHistory"] for r in later), later
    assert all(r["session"] == first["claudeSessionId"] for r in later)


def test_continue_from_waits_while_the_earlier_session_runs(fleet: Fleet) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    sandbox.inject("stall", credential="alice", seconds=8)
    scene.session("first")
    scene.wait_running("first", timeout=RUN_TIMEOUT)
    scene.session("second", prompt="And then?", continueFrom={"name": "first"})
    waiting = wait_for(
        "second waits for first",
        lambda: (
            (c := scene.condition("agentsessions", "second", "Ready")).get("reason")
            == "PredecessorRunning"
            and c
        ),
        timeout=60,
    )
    assert "first" in waiting["message"]
    scene.wait_phase("agentsessions", "second", "Succeeded", timeout=RUN_TIMEOUT)


@pytest.fixture
def git_server(tmp_path: Path, e2e_node: RealNode) -> Any:
    """On the host's bridge address, where the node's pods reach it."""
    token = f"gt_{uuid.uuid4().hex}"
    with GitServer(tmp_path / "git", token=token, host=e2e_node.ip) as server:
        yield server
