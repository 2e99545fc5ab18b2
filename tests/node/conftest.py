"""Fixtures for tests on a real node (hack/node): see realnode.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from realnode import (
    NodeCluster,
    RealNode,
    build_node,
    remove_orphan_clusters,
    remove_orphans,
    session_node_name,
)


@pytest.fixture(scope="session")
def node_build() -> dict[str, str]:
    """The node's binaries and images (hack/node/build.sh, cached): its node.env."""
    if os.geteuid() != 0:
        pytest.fail("tests/node need root: hack/node/up.sh runs containerd", pytrace=False)
    try:
        return build_node()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def node_cluster(
    kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeCluster]:
    """HEADROOM_TEST_KUBECONFIG's cluster if set, else a private local cluster of this session
    (the shared one may predate the API server flags a kubelet needs, and other tests count
    its nodes)."""
    if os.environ.get("HEADROOM_TEST_KUBECONFIG"):
        yield NodeCluster("", kubeconfig)
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


@pytest.fixture
def node_namespace(real_node: RealNode) -> Iterator[str]:
    """A fresh namespace in the node's cluster, deleted without waiting afterwards."""
    name = real_node.namespace("t-node")
    try:
        yield name
    finally:
        real_node.kubectl("delete", "namespace", name, "--wait=false")
