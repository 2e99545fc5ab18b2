"""The whole chain on a real node: `headroom operator` creates agent pods, a real kubelet and
containerd run them from the agent image built from images/agent/Dockerfile (the runner
wrapping the pinned Claude Code CLI), and the CLI talks to `headroom-dev sandbox-api`, the only
stand-in, on the host's address on the node's bridge. No test writes a pod status; every
termination message is the one the runner wrote and the kubelet reported.

The node and its private cluster are the test session's (tests/support/node_fixtures.py);
each test gets its own namespace, operator and stand-in (three OAuth accounts with small
windows and one API key, tokens unique to the test).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.e2e import CLI_MAX_RETRIES, MARKER, OAUTH_ACCOUNTS, Fleet
from tests.support.node_fixtures import AGENT_IMAGE
from tests.support.operator import OperatorProcess, Scene
from tests.support.provisioner import ProvisionerProcess
from tests.support.realnode import NODE_LABEL, NODE_TOLERATION, RealNode

from headroom_dev.sandbox.client import SandboxProcess, start_sandbox


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether the test (or its setup) failed, so teardown can print the logs that
    explain it."""
    report = yield
    if report.when in ("setup", "call") and report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


# The e2e tests run in the node's cluster, not the shared one: these replace the root
# fixtures of the same names for everything under tests/e2e (the root `namespace` fixture
# then creates its namespaces there too).
@pytest.fixture(scope="session")
def kubeconfig(node_kubeconfig: Path) -> Path:
    return node_kubeconfig


@pytest.fixture(scope="session")
def k8s(node_kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(node_kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield api
    finally:
        api.close()


PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


@pytest.fixture
def namespace(namespace: str, k8s: Any) -> str:
    """The root fixture's namespace, under Pod Security `restricted`, enforced by the API
    server as the shipped manifests ask for the agents' namespace: every agent pod of the
    e2e suite is admitted under it."""
    from kubernetes import client

    patch = {"metadata": {"labels": {PSA_ENFORCE: "restricted"}}}
    client.CoreV1Api(k8s).patch_namespace(namespace, patch)
    return namespace


@pytest.fixture(scope="session")
def e2e_node(
    real_node: RealNode, node_images: list[str], node_volumes: ProvisionerProcess
) -> RealNode:
    """The session's real node, with the project's images and a volume provisioner."""
    return real_node


def agent_flags(node: RealNode, stand_in: SandboxProcess) -> list[str]:
    """Flags for `headroom operator` that put its agent pods on this node, pointed at the
    stand-in."""
    selector = {**NODE_LABEL, "kubernetes.io/hostname": node.name}
    return [
        "--agent-image", AGENT_IMAGE,
        "--agent-node-selector", json.dumps(selector),
        "--agent-tolerations", json.dumps([NODE_TOLERATION]),
        "--anthropic-base-url", stand_in.url,
    ]  # fmt: skip


@pytest.fixture
def stand_in(e2e_node: RealNode) -> Iterator[SandboxProcess]:
    """On the host's bridge address: the only address of the host the node's pods reach."""
    with start_sandbox("--host", e2e_node.ip, "--marker", MARKER, "--reply", "Done.") as server:
        yield server


@pytest.fixture
def operator(
    kubeconfig: Path,
    namespace: str,
    e2e_node: RealNode,
    stand_in: SandboxProcess,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        kubeconfig, namespace, tmp_path / "operator", extra=agent_flags(e2e_node, stand_in)
    ).start()
    try:
        yield proc
    finally:
        proc.stop()
        if request.node.stash.get(_FAILED, False):
            _dump(proc, e2e_node, stand_in, namespace)


@pytest.fixture
def fleet(k8s: Any, namespace: str, stand_in: SandboxProcess, operator: OperatorProcess) -> Fleet:
    """alice, bob, carol (OAuth, tier=max, maxSessions 2) and team-api (APIKey, type=api-key),
    each Available before the test starts. Every session gets fewer CLI retries than the
    default ten, as a user may set in spec.env."""
    scene = Scene(k8s, namespace, session_env={"CLAUDE_CODE_MAX_RETRIES": CLI_MAX_RETRIES})
    fleet = Fleet(scene, stand_in)
    for name, priority in OAUTH_ACCOUNTS.items():
        fleet.oauth(name, priority)
    fleet.api_key("team-api")
    fleet.wait_available()
    return fleet


def _dump(operator: OperatorProcess, node: RealNode, sandbox: SandboxProcess, ns: str) -> None:
    print(f"===== operator log (namespace {ns}) =====")
    print(operator.log_text()[-12000:])
    print("===== kubelet log (tail) =====")
    print(node.kubelet_log(40))
    print("===== pods =====")
    print(node.kubectl("-n", ns, "get", "pods", "-o", "wide").stdout)
    print("===== stand-in requests =====")
    for r in sandbox.requests():
        print({k: r.get(k) for k in ("seq", "credential", "status", "result", "session")})
    for log in [p for p in node.container_logs() if f"/{ns}_" in str(p)][-6:]:
        print(f"===== {log} =====")
        print(log.read_text(errors="replace")[-1500:])
