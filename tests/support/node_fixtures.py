"""Fixtures for tests on a real node (see realnode.py), shared by tests/node and tests/e2e:
one private cluster and one node per test session, the project's images imported into it.

- `real_node` (session): a kubelet and containerd of this session, Ready, on `node_cluster`.
- `node_images` (session): hack/images/build.sh's archives, imported into the node.
- `node_kubeconfig` (session): the node's cluster with the CRDs installed.
- `node_volumes` (session): hostPath volumes for the claims of that cluster.
- `node_namespace`: a fresh namespace in that cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.crds import install_crds
from tests.support.provisioner import ProvisionerProcess
from tests.support.realnode import (
    IMAGE_SCRIPTS,
    NODE_SCRIPTS,
    NodeCluster,
    RealNode,
    build_node,
    remove_orphan_clusters,
    remove_orphans,
    run,
    session_node_name,
    tail,
)

AGENT_IMAGE = "headroom-agent:dev"
OPERATOR_IMAGE = "headroom:dev"


@pytest.fixture(scope="session")
def node_build() -> dict[str, str]:
    """The node's binaries and images (hack/node/build.sh, cached): its node.env."""
    if os.geteuid() != 0:
        pytest.fail("a real node needs root: hack/node/up.sh runs containerd", pytrace=False)
    try:
        return build_node()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def node_cluster(
    kubectl_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeCluster]:
    """HEADROOM_TEST_KUBECONFIG's cluster if set, else a private local cluster of this session
    (the shared one may predate the API server flags a kubelet needs, and other tests count
    its nodes)."""
    external = os.environ.get("HEADROOM_TEST_KUBECONFIG")
    if external:
        yield NodeCluster("", Path(external))
        return
    scratch = tmp_path_factory.mktemp("node-cluster")
    remove_orphan_clusters(scratch)
    try:
        cluster = NodeCluster.private(scratch)
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        failed = cluster.down()
        if failed:
            print(f"[node] down.sh of cluster {cluster.name} failed:\n{failed}")


@pytest.fixture(scope="session")
def node_kubeconfig(node_cluster: NodeCluster, kubectl_path: str) -> Path:
    failed = install_crds(kubectl_path, node_cluster.kubeconfig)
    if failed:
        pytest.fail(failed, pytrace=False)
    return node_cluster.kubeconfig


@pytest.fixture(scope="session")
def real_node(
    node_cluster: NodeCluster, kubectl_path: str, node_build: dict[str, str]
) -> Iterator[RealNode]:
    """A node of this test session, Ready; stopped at the end."""
    remove_orphans(node_cluster, kubectl_path)
    node = RealNode(session_node_name(), node_cluster, kubectl_path)
    try:
        node.up()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield node
    finally:
        down = node.down()
        if down.returncode != 0:
            print(f"[node] down.sh for {node.name} failed:\n{down.stderr[-2000:]}")


@pytest.fixture(scope="session")
def node_images(real_node: RealNode) -> list[str]:
    """hack/images/build.sh (cached; minutes when cold), imported into the session's node."""
    built = run([str(IMAGE_SCRIPTS / "build.sh")], timeout=3600)
    if built.returncode != 0:
        pytest.fail(f"hack/images/build.sh failed:\n{tail(built.stderr)}", pytrace=False)
    archives = [line for line in built.stdout.splitlines() if line.endswith(".tar")]
    done = run([str(NODE_SCRIPTS / "import.sh"), *archives], env=real_node.env(), timeout=600)
    if done.returncode != 0:
        pytest.fail(f"hack/node/import.sh failed:\n{tail(done.stderr)}", pytrace=False)
    return archives


@pytest.fixture
def node_namespace(real_node: RealNode) -> Iterator[str]:
    """A fresh namespace in the node's cluster, deleted without waiting afterwards."""
    name = real_node.namespace("t-node")
    try:
        yield name
    finally:
        real_node.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def node_volumes(
    node_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProvisionerProcess]:
    """Claims in the node's cluster get hostPath volumes the node can mount."""
    base = tmp_path_factory.mktemp("volumes")
    proc = ProvisionerProcess(node_kubeconfig, base / "root", base / "provisioner.log").start()
    try:
        yield proc
    finally:
        proc.stop()
