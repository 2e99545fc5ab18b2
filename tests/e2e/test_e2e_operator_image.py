"""The operator image (images/operator/Dockerfile) runs as the operator: the Deployment of
manifests/base, with its ServiceAccount and RBAC, on the real node, verifies an account and
runs a session to the end in an agent pod of its own making.

What the test changes in the Deployment, and why (everything else is as shipped: user,
read-only root filesystem, capabilities, resources, probes, peering, args):
- the image is the locally built `headroom:dev`, and one replica (both would bind the same
  host ports);
- hostNetwork, with the API server's address given explicitly: this cluster has no Service
  network (no kube-proxy), so the `kubernetes` Service's address leads nowhere;
- free host ports for metrics and health, for the same reason;
- Pod Security `privileged` on headroom-system (hostNetwork is refused by the shipped
  `restricted` level, as it should be);
- flags that send the agent pods to the real node and point them at the stand-in."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tests.support.manifests import MANIFESTS, find, kustomize_dir
from tests.support.node_fixtures import AGENT_IMAGE, OPERATOR_IMAGE
from tests.support.operator import Scene, free_port, wait_for
from tests.support.realnode import NODE_LABEL, NODE_TOLERATION, RealNode

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox

pytestmark = pytest.mark.e2e

AGENTS, SYSTEM = "agents", "headroom-system"  # the manifests' namespaces
TOKEN = f"sk-ant-oat01-image-{uuid.uuid4().hex}"
RUN_TIMEOUT = 240


def deployment_for_this_node(
    shipped: dict[str, Any], node: RealNode, api_server: str, stand_in: str
) -> dict[str, Any]:
    deployment = copy.deepcopy(shipped)
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    pod["hostNetwork"] = True
    pod["nodeSelector"] = {**NODE_LABEL, "kubernetes.io/hostname": node.name}
    pod["tolerations"] = [NODE_TOLERATION]
    (container,) = pod["containers"]
    container["image"] = OPERATOR_IMAGE
    container["imagePullPolicy"] = "Never"
    host = urlsplit(api_server)
    container["env"] += [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host.hostname},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(host.port)},
    ]
    metrics, health = free_port(), free_port()
    ports = {"metrics": metrics, "health": health}
    container["ports"] = [
        {"name": name, "containerPort": port, "hostPort": port} for name, port in ports.items()
    ]
    args = [a for a in container["args"] if not a.startswith(("--metrics-port", "--liveness"))]
    container["args"] = [
        *args,
        f"--metrics-port={metrics}",
        f"--liveness=http://0.0.0.0:{health}/healthz",
        f"--anthropic-base-url={stand_in}",
        f"--agent-image={AGENT_IMAGE}",
        f"--agent-node-selector={json.dumps({**NODE_LABEL, 'kubernetes.io/hostname': node.name})}",
        f"--agent-tolerations={json.dumps([NODE_TOLERATION])}",
    ]
    return deployment


@pytest.fixture
def stand_in(e2e_node: RealNode) -> Iterator[SandboxProcess]:
    with start_sandbox("--host", e2e_node.ip, "--oauth-token", f"alice={TOKEN}") as server:
        yield server


@pytest.fixture
def installed(
    e2e_node: RealNode, kubectl_path: str, stand_in: SandboxProcess
) -> Iterator[dict[str, Any]]:
    """manifests/base in the node's cluster, its Deployment adapted as the module says."""
    rendered = kustomize_dir(kubectl_path, MANIFESTS / "base")
    shipped = find(rendered, "Deployment", "headroom-operator")
    rest = [d for d in rendered if d is not shipped]
    system = find(rest, "Namespace", SYSTEM)
    system["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"
    server = e2e_node.kubectl("config", "view", "--minify", "-o", "json").stdout
    api_server = json.loads(server)["clusters"][0]["cluster"]["server"]
    deployment = deployment_for_this_node(shipped, e2e_node, api_server, stand_in.url)
    docs = yaml.safe_dump_all([*rest, deployment])
    done = e2e_node.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=docs)
    assert done.returncode == 0, done.stderr
    try:
        yield deployment
    finally:
        e2e_node.kubectl("delete", "namespace", AGENTS, SYSTEM, "--wait=false")


def _operator_log(node: RealNode) -> str:
    done = node.kubectl("-n", SYSTEM, "logs", "deployment/headroom-operator", "--tail=80")
    return done.stdout + done.stderr


def _what_happened(node: RealNode) -> str:
    objects = node.kubectl("-n", SYSTEM, "get", "deploy,rs,pods", "-o", "wide")
    events = node.kubectl("-n", SYSTEM, "get", "events", "--sort-by=.lastTimestamp")
    return (
        f"{objects.stdout}{objects.stderr}\nevents:\n{events.stdout[-3000:]}\n"
        f"operator log:\n{_operator_log(node)}"
    )


def test_the_operator_image_runs_the_shipped_deployment_and_a_session_on_the_node(
    e2e_node: RealNode, k8s: Any, installed: dict[str, Any], stand_in: SandboxProcess
) -> None:
    def operator_pod() -> dict[str, Any] | None:
        done = e2e_node.kubectl(
            "-n", SYSTEM, "get", "pods", "-l", "app.kubernetes.io/name=headroom-operator",
            "-o", "json",
        )  # fmt: skip
        pods = json.loads(done.stdout)["items"] if done.returncode == 0 else []
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        return ready[0] if ready else None

    try:
        pod = wait_for("the operator pod Ready (its startup probe)", operator_pod, timeout=180)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_what_happened(e2e_node)}") from None
    assert pod["spec"]["nodeName"] == e2e_node.name
    (status,) = pod["status"]["containerStatuses"]
    assert status["image"].endswith(OPERATOR_IMAGE) and status["restartCount"] == 0, status

    scene = Scene(k8s, AGENTS)
    try:
        scene.account("alice", token=TOKEN)  # Available: the operator in the pod verified it
        scene.session("from-the-image", prompt="Say done.")
        done = scene.wait_phase("agentsessions", "from-the-image", "Succeeded", RUN_TIMEOUT)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{_what_happened(e2e_node)}") from None
    assert done["account"] == "alice" and done["result"]["outcome"] == "completed"
    agent = scene.pod(done["podName"])
    assert agent is not None and agent.spec.node_name == e2e_node.name
    assert {r["credential"] for r in stand_in.requests()} == {"alice"}
    assert TOKEN not in _operator_log(e2e_node)
