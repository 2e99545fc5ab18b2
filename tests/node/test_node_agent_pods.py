"""The images built from images/*/Dockerfile (hack/images/build.sh, no Docker) run as real
containers on a real node: the agent image as its non-root user under a memory limit, its
entrypoint through a whole run against the stand-in API (reached at the bridge address of
the host), an agent over its memory limit OOM-killed by the kernel, and the operator image."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.claude_cli import PINNED_CLI_VERSION
from tests.support.node_fixtures import AGENT_IMAGE, OPERATOR_IMAGE
from tests.support.realnode import RealNode

from headroom.contract import pod as contract
from headroom.core.accounts import CredentialType
from headroom.kube import agent_pod
from headroom.kube.agent_pod import Attempt, PodSettings
from headroom.kube.manifests import runtime_secret_name
from headroom_dev.sandbox.client import SandboxProcess, start_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.cli]

TOKEN = "sk-ant-oat01-real-node-7781"


@pytest.fixture
def stand_in(real_node: RealNode) -> Iterator[SandboxProcess]:
    """The stand-in API on the host's bridge address, where the node's pods reach it."""
    with start_sandbox("--host", real_node.ip, "--oauth-token", f"alice={TOKEN}") as server:
        yield server


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def logs(node: RealNode, namespace: str, name: str) -> str:
    done = node.kubectl("-n", namespace, "logs", name)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_agent_image_runs_claude_as_its_non_root_user_under_a_memory_limit(
    real_node: RealNode, node_images: list[str], node_namespace: str
) -> None:
    script = (
        "id -u; id -g; claude --version; headroom agent --help >/dev/null && echo runner-ok; "
        "git --version; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
        "|| cat /sys/fs/cgroup/memory.max"
    )
    pod = real_node.run_pod(
        node_namespace,
        real_node.pod_manifest(
            "agent-version",
            {
                "image": AGENT_IMAGE,
                "command": ["sh", "-c", script],
                "resources": {"limits": {"memory": "512Mi", "cpu": "1"}},
                "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
            },
        ),
    )
    assert terminated(pod)["exitCode"] == 0, terminated(pod)
    lines = logs(real_node, node_namespace, "agent-version").splitlines()
    assert lines[:2] == ["10001", "10001"]  # the image's USER, not root
    assert lines[2] == f"{PINNED_CLI_VERSION} (Claude Code)"
    assert lines[3] == "runner-ok"
    assert lines[4].startswith("git version ")
    assert lines[5] == str(512 * 1024 * 1024)  # the limit reached the container's cgroup


def test_agent_entrypoint_completes_a_run_against_the_stand_in(
    real_node: RealNode, node_images: list[str], node_namespace: str, stand_in: SandboxProcess
) -> None:
    """No command: the image's ENTRYPOINT (`headroom agent`) with the pod contract's
    environment; its termination message reaches the pod status through the kubelet."""
    env = {
        contract.SESSION_ID: str(uuid.uuid4()),
        contract.PROMPT: "Say hello from the real node.",
        contract.ATTEMPT: "1",
        contract.EXPECT_TRANSCRIPT: "false",
        contract.BASE_URL_ENV: stand_in.url,
        contract.OAUTH_TOKEN_ENV: TOKEN,
    }
    pod = real_node.run_pod(
        node_namespace,
        real_node.pod_manifest(
            "agent-run",
            {
                "image": AGENT_IMAGE,
                "env": [{"name": k, "value": v} for k, v in env.items()],
                "resources": {"limits": {"memory": "1Gi"}},
            },
        ),
        timeout=180,
    )
    state = terminated(pod)
    assert state["exitCode"] == 0, (state, logs(real_node, node_namespace, "agent-run")[-2000:])
    message = json.loads(state["message"])
    assert message["outcome"] == "completed", message
    assert stand_in.url.startswith(f"http://{real_node.ip}:")
    requests = stand_in.requests()
    assert requests, "the agent never reached the stand-in API"
    assert {r["credential"] for r in requests} == {"alice"}


def test_an_agent_over_its_memory_limit_is_oom_killed(
    real_node: RealNode, node_images: list[str], node_namespace: str
) -> None:
    pod = real_node.run_pod(
        node_namespace,
        real_node.pod_manifest(
            "agent-oom",
            {
                "image": AGENT_IMAGE,
                "command": ["python3", "-c", "x = bytearray(256 << 20); print('survived')"],
                "resources": {"limits": {"memory": "64Mi"}},
            },
        ),
    )
    state = terminated(pod)
    assert state["exitCode"] == 137, state
    assert state["reason"] == "OOMKilled", state
    assert pod["status"]["phase"] == "Failed"


def test_operator_image_runs_headroom_operator_as_its_non_root_user(
    real_node: RealNode, node_images: list[str], node_namespace: str
) -> None:
    pod = real_node.run_pod(
        node_namespace,
        real_node.pod_manifest(
            "operator-help",
            {
                "image": OPERATOR_IMAGE,
                "command": ["sh", "-c", "id -u && headroom operator --help >/dev/null && echo ok"],
                "securityContext": {"runAsNonRoot": True},
            },
        ),
    )
    assert terminated(pod)["exitCode"] == 0, terminated(pod)
    assert logs(real_node, node_namespace, "operator-help").split() == ["10001", "ok"]


def test_node_runs_as_root_only() -> None:
    """The node needs root (containerd, cgroups, a bridge): say so instead of failing late."""
    assert os.geteuid() == 0, "tests/node need root: hack/node/up.sh runs containerd"


def test_the_operators_agent_pod_completes_a_run_on_the_node(
    real_node: RealNode,
    node_images: list[str],
    node_namespace: str,
    stand_in: SandboxProcess,
    tmp_path: Path,
) -> None:
    """The pod exactly as the operator builds it (headroom.kube.agent_pod: read-only root,
    non-root user and fsGroup, emptyDirs, the credential from a Secret, the workspace PVC with
    the transcripts' subPath mount) runs the image's runner to a completed run."""
    ns = node_namespace
    attempt = Attempt(
        number=1,
        account="alice",
        credential_type=CredentialType.OAUTH_TOKEN,
        credential_key="token",
        claude_session_id=str(uuid.uuid4()),
        expect_transcript=False,
        auth_path="primary",
        workspace_claim="s1-workspace",
    )
    # The workspace: a hostPath volume bound to the claim by name (what a local-path
    # provisioner would make), writable by any pod user as such provisioners make them.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    workspace.chmod(0o777)
    pv_name = f"{ns}-workspace"
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": runtime_secret_name("alice")},
            "stringData": {"token": TOKEN},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(workspace), "type": "Directory"},
                "claimRef": {"namespace": ns, "name": attempt.workspace_claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": attempt.workspace_claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    for obj in objects:
        done = real_node.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(obj))
        assert done.returncode == 0, done.stderr
    session = {
        "apiVersion": "headroom.dev/v1alpha1",
        "kind": "AgentSession",
        "metadata": {"name": "s1", "namespace": ns, "uid": str(uuid.uuid4())},
        "spec": {"prompt": "Say hello from the operator's pod."},
    }
    settings = PodSettings(
        default_image=AGENT_IMAGE,
        anthropic_base_url=stand_in.url,
        node_selector={"headroom.dev/node": "real", "kubernetes.io/hostname": real_node.name},
        tolerations=(
            {"key": "headroom.dev/real-node", "operator": "Exists", "effect": "NoSchedule"},
        ),
    )
    pod = agent_pod.agent_pod(session, attempt, settings)
    # No AgentSession exists here: an owner that does not exist would have the garbage
    # collector delete the pod.
    pod["metadata"].pop("ownerReferences", None)
    try:
        finished = real_node.run_pod(ns, pod, timeout=180)
        state = terminated(finished)
        name = pod["metadata"]["name"]
        assert state["exitCode"] == 0, (state, logs(real_node, ns, name)[-3000:])
        message = json.loads(state["message"])
        assert message["outcome"] == "completed", message
        assert {r["credential"] for r in stand_in.requests()} == {"alice"}
        # The transcript went through the subPath mount onto the workspace volume.
        assert list((workspace / contract.PROJECTS_SUBPATH).rglob("*.jsonl")), list(
            workspace.rglob("*")
        )
    finally:
        real_node.kubectl("delete", "pv", pv_name, "--wait=false")
