"""What only a real node shows: the kernel's OOM killer at the pod's memory limit, the
kubelet's SIGTERM when a pod is deleted mid-run, an image the runtime cannot pull, and what
the agent's own tools can reach of the account's credential inside a real container."""

from __future__ import annotations

import re
import shlex
import uuid
from typing import Any

import pytest
from tests.support.credential_probe import PROBE
from tests.support.e2e import MARKER, Fleet
from tests.support.operator import wait_for

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 240  # failure bounds for real CLI runs on a shared 2-core machine


def test_an_agent_over_its_memory_limit_is_oom_killed_and_fails_never_walls(
    fleet: Fleet,
) -> None:
    scene = fleet.scene
    # Far below what the CLI needs to start: the kernel kills it at the cgroup's limit.
    tight = {"requests": {"memory": "48Mi"}, "limits": {"memory": "48Mi"}}
    scene.session("greedy", resources=tight)
    done = scene.wait_phase("agentsessions", "greedy", "Failed", timeout=RUN_TIMEOUT)
    assert done["result"]["reason"] == "OOMKilled", done["result"]
    ready = scene.condition("agentsessions", "greedy", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "OOMKilled"), ready
    assert "out of memory" in ready["message"], ready
    # Every attempt failed on the same account (--max-failures 2: three in a row)...
    attempts = done["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed"] * 3, attempts
    assert len({a["account"] for a in attempts}) == 1 and not done.get("swaps")
    # ...and nothing of it reads as a wall: the account stays Available.
    account = scene.status("claudeaccounts", attempts[0]["account"])
    assert account["phase"] == "Available", account
    assert not fleet.events("Walled")
    assert any("out of memory" in m for m in fleet.events("OOMKilled")), [
        (e.reason, e.message) for e in scene.events()
    ]


def test_a_pod_deleted_mid_run_gets_sigterm_and_the_next_attempt_resumes(fleet: Fleet) -> None:
    scene, sandbox = fleet.scene, fleet.sandbox
    # The first request hangs far longer than the test waits: only SIGTERM ends that run.
    sandbox.inject("stall", credential="alice", seconds=300)
    scene.session("interrupted", prompt=f"Remember the word {MARKER}, then say done.")
    wait_for(
        "the first request held in the stand-in",
        lambda: (
            scene.status("agentsessions", "interrupted").get("account") == "alice"
            and fleet.in_flight() >= 1
        ),
        timeout=RUN_TIMEOUT,
    )
    first = scene.status("agentsessions", "interrupted")
    scene.core.delete_namespaced_pod(first["podName"], scene.ns)

    done = scene.wait_phase("agentsessions", "interrupted", "Succeeded", timeout=RUN_TIMEOUT)
    assert done["claudeSessionId"] == first["claudeSessionId"]
    stopped, *_, finished = done["attempts"]
    assert (stopped["podName"], stopped["outcome"]) == (first["podName"], "failed"), stopped
    assert finished["outcome"] == "completed" and done["attempt"] >= 2
    # The runner said why its run ended: the kubelet's SIGTERM, forwarded to the CLI.
    assert any("SIGTERM" in m for m in fleet.events("AttemptFailed")), [
        (e.reason, e.message) for e in scene.events()
    ]
    # The next attempt resumed the conversation the CLI had written before the signal.
    later = [r for r in fleet.requests(session=first["claudeSessionId"]) if r["result"] == "ok"]
    assert later and all(r["markerInHistory"] for r in later), later
    assert not done.get("swaps"), "a deleted pod is not a wall"


def test_an_image_that_cannot_be_pulled_is_named_in_the_sessions_ready_condition(
    fleet: Fleet,
) -> None:
    scene = fleet.scene
    image = "headroom-agent:no-such-tag"
    scene.session("unpullable", image=image)

    def pull_problem() -> dict[str, Any] | None:
        ready = scene.condition("agentsessions", "unpullable", "Ready")
        if ready.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
            return ready
        return None

    ready = wait_for("Ready names the pull problem", pull_problem, timeout=RUN_TIMEOUT)
    assert ready["status"] == "False" and image in ready["message"], ready
    status = scene.status("agentsessions", "unpullable")
    assert status["phase"] == "Running" and not status.get("swaps"), status
    assert not fleet.requests(), "no agent ran"


# The shape of every token of the e2e fleet (tests/support/e2e.py), and of the controls below.
TOKEN_SHAPE = r"sk-ant-(?:oat01|api03)-e2e-[a-z-]+-[0-9a-f]{32}"


def test_the_agents_tools_find_no_trace_of_the_accounts_credential(fleet: Fleet) -> None:
    """The scripted agent plants a token-shaped control in a file and gets another in a
    plain variable, then searches everything its user can read. It must find both controls
    (the search works) and the account's token nowhere."""
    scene, sandbox = fleet.scene, fleet.sandbox
    in_env = f"sk-ant-oat01-e2e-control-{uuid.uuid4().hex}"
    in_file = f"sk-ant-oat01-e2e-planted-{uuid.uuid4().hex}"
    search = f"python3 -c {shlex.quote(PROBE)} {shlex.quote(TOKEN_SHAPE)}"
    sandbox.script_credential(
        "alice",
        [
            {"tools": [{"name": "Bash", "input": {"command": f"echo {in_file} > planted.txt"}}]},
            {"tools": [{"name": "Bash", "input": {"command": search, "timeout": 300000}}]},
            {"text": "Searched."},
        ],
    )  # fmt: skip
    control = [{"name": "CONTROL_TOKEN", "value": in_env}]
    unattended = {"permissionMode": "bypassPermissions"}
    scene.session("probe", env=control, claude=unattended)
    done = scene.wait_phase("agentsessions", "probe", "Succeeded", timeout=RUN_TIMEOUT)
    assert done["account"] == "alice"
    results = sandbox.tool_results()
    (report,) = [r["content"] for r in results if r["step"] == 1]
    found = set(re.findall(r"^found (\S+)$", report, re.MULTILINE))
    assert found == {in_env, in_file}, report
    searched = dict(kv.split("=") for kv in report.splitlines()[-1].split()[1:])
    assert int(searched["proc"]) > 4 and int(searched["files"]) > 1000, searched
    assert all(fleet.tokens["alice"] not in str(r) for r in results)


def test_a_pod_template_that_breaks_pod_security_is_named_in_the_session(fleet: Fleet) -> None:
    """The namespace enforces Pod Security `restricted`; a session whose podTemplate asks for
    an unconfined seccomp profile gets no pod, and its Scheduled condition quotes the API
    server's refusal, naming the rule. The account is untouched; other sessions still run."""
    scene = fleet.scene
    template = {"spec": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}}}
    scene.session("unconfined", podTemplate=template)

    def refused() -> dict[str, Any] | None:
        scheduled = scene.condition("agentsessions", "unconfined", "Scheduled")
        return scheduled if scheduled.get("reason") == "PodCreateFailed" else None

    scheduled = wait_for("Scheduled=False PodCreateFailed", refused, timeout=RUN_TIMEOUT)
    assert scheduled["status"] == "False"
    assert 'violates PodSecurity "restricted' in scheduled["message"], scheduled
    assert "seccompProfile" in scheduled["message"], scheduled
    assert not scene.live_pods() and not fleet.requests()
    scene.session("fine")
    done = scene.wait_phase("agentsessions", "fine", "Succeeded", timeout=RUN_TIMEOUT)
    assert scene.status("claudeaccounts", done["account"])["phase"] == "Available"
