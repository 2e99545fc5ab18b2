"""Fixtures for tests on a real node (hack/node): see realnode.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from realnode import RealNode, build_node, remove_orphans, session_node_name


@pytest.fixture(scope="session")
def node_build() -> dict[str, str]:
    """The node's binaries and images (hack/node/build.sh, cached): its node.env."""
    try:
        return build_node()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def real_node(
    kubeconfig: Path, kubectl_path: str, node_build: dict[str, str]
) -> Iterator[RealNode]:
    """A node of this test session, Ready; stopped (and checked empty) at the end."""
    remove_orphans(kubeconfig, kubectl_path)
    node = RealNode(session_node_name(), kubeconfig, kubectl_path)
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
