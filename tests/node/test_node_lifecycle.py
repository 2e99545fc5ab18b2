"""A real node (hack/node/up.sh) on the test cluster: a plain pod runs there to completion with
the kubelet's own status (exit code, termination message, logs), the kubelet's changes to the
host stay in the node's mount namespace, and down.sh leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.realnode import (
    HostSnapshot,
    NodeCluster,
    RealNode,
    cache_root,
    node_processes,
    session_node_name,
)

pytestmark = pytest.mark.integration

# The sysctls the kubelet sets when it starts (setupKernelTunables), with its values.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


def test_a_pod_runs_to_completion_and_down_leaves_the_host_as_it_was(
    node_cluster: NodeCluster, kubectl_path: str, node_build: dict[str, str]
) -> None:
    before = HostSnapshot.take()
    node = RealNode(f"{session_node_name()}-life", node_cluster, kubectl_path)
    try:
        node.up()
        namespace = node.namespace("t-node-life")
        got = node.get()
        assert got["metadata"]["labels"]["headroom.dev/node"] == "real"
        assert {"key": "headroom.dev/real-node", "value": "true", "effect": "NoSchedule"} in got[
            "spec"
        ]["taints"]
        assert got["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
        ip = node.ip
        assert ip.startswith("10.244.") and ip.endswith(".1")

        pod = node.run_pod(
            namespace,
            node.pod_manifest(
                "plain",
                {
                    "image": node_build["BUSYBOX_IMAGE"],
                    "command": ["sh", "-c", 'echo "to stdout"; echo "bye from the node" '
                                "> /dev/termination-log; exit 75"],
                },
            ),
        )  # fmt: skip
        assert pod["spec"]["nodeName"] == node.name
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["podIP"].startswith(ip.rsplit(".", 1)[0] + ".")
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 75
        assert terminated["reason"] == "Error"
        assert terminated["message"] == "bye from the node\n"
        assert terminated["containerID"].startswith("containerd://")
        logs = node.kubectl("-n", namespace, "logs", "plain")
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout == "to stdout\n"

        # The kubelet did set its sysctls, but on the covers of its mount namespace: the
        # kernel's values are those from before the node.
        for key, value in KUBELET_SYSCTLS.items():
            cover = node.state / "sysctl" / key.replace("/", ".")
            assert cover.read_text().strip() == value, key
            assert (
                Path("/proc/sys", key).read_text().strip() == before.sysctls[key.replace("/", ".")]
            ), key
    finally:
        down = node.down()
    assert down.returncode == 0, down.stderr

    after = HostSnapshot.take()
    assert not node_processes(node)
    assert not list((cache_root() / "node").glob(f"{node.name}*"))  # state dir, lock, ...
    assert node.kubectl("get", "node", node.name).returncode != 0  # the Node object is gone
    assert before.differences(after) == []
