"""A real node of the test cluster (hack/node/up.sh: containerd v2 and a kubelet, in a private
mount namespace, on a bridge of its own), and what a test needs around it: pods that land on
it, and a snapshot of the host to prove that `down.sh` leaves nothing behind.

Each test session starts nodes of its own, named after its pid, so it never stops a node a
developer started with `make node`, nor one of a concurrent run; nodes of dead runs are
removed on the next start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NODE_SCRIPTS = REPO / "hack" / "node"
IMAGE_SCRIPTS = REPO / "hack" / "images"
TEST_PREFIX = "headroom-node-test-"
CLUSTER_PREFIX = "headroom-nodetest-"
NODE_LABEL = {"headroom.dev/node": "real"}
NODE_TOLERATION = {
    "key": "headroom.dev/real-node",
    "operator": "Exists",
    "effect": "NoSchedule",
}
# Paths the kubelet, containerd or CNI write on a host unless told otherwise. The node keeps
# them inside its mount namespace: none may appear on the host.
HOST_PATHS = [
    "/var/lib/kubelet", "/var/lib/containerd", "/var/lib/cni", "/var/log/containers",
    "/var/log/pods", "/run/containerd", "/run/netns", "/opt/containerd", "/opt/cni",
    "/etc/cni", "/etc/containerd", "/var/run/nri",
]  # fmt: skip
# Sysctls that move on their own (counters, random values).
VOLATILE_SYSCTLS = re.compile(
    r"^(fs\.(dentry-state|file-nr|inode-nr|inode-state|aio-nr|quota\.)|kernel\.(ns_last_pid|"
    r"random\.|pty\.nr)|net\.netfilter\.nf_conntrack_count)"
)


def cache_root() -> Path:
    if os.environ.get("HEADROOM_CACHE"):
        return Path(os.environ["HEADROOM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headroom"


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def build_node() -> dict[str, str]:
    """hack/node/build.sh (a no-op when cached): the node's node.env, plus BIN_DIR."""
    done = run([str(NODE_SCRIPTS / "build.sh")])
    if done.returncode != 0:
        raise RuntimeError(f"hack/node/build.sh failed ({done.returncode}):\n{tail(done.stderr)}")
    bin_dir = Path(done.stdout.strip().splitlines()[-1])
    env = dict(
        line.split("=", 1) for line in (bin_dir / "node.env").read_text().splitlines() if line
    )
    env["BIN_DIR"] = str(bin_dir)
    return env


@dataclass
class NodeCluster:
    """The control plane the node joins: a private local cluster of this test session
    (hack/cluster/up.sh under its own name, with the API server flags a real node needs,
    apart from the shared cluster other tests count nodes and pods in), or an external one."""

    name: str  # the local cluster's name ("" for an external cluster)
    kubeconfig: Path

    @classmethod
    def private(cls, scratch: Path) -> NodeCluster:
        name = f"{CLUSTER_PREFIX}{os.getpid()}"
        cluster = cls(name, scratch / f"{name}.kubeconfig")
        done = cluster._script("up.sh")
        if done.returncode != 0:
            cluster.down()
            raise RuntimeError(f"hack/cluster/up.sh for {name} failed:\n{tail(done.stderr)}")
        return cluster

    def _script(self, script: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HEADROOM_CLUSTER_NAME": self.name,
            "HEADROOM_KUBECONFIG_OUT": str(self.kubeconfig),
        }
        env.pop("HEADROOM_CLUSTER_LEASE", None)
        env.pop("KUBECONFIG", None)
        return run([str(REPO / "hack" / "cluster" / script)], env=env, timeout=600)

    def down(self) -> str:
        if not self.name:
            return ""
        done = self._script("down.sh")
        return "" if done.returncode == 0 else tail(done.stderr)


def remove_orphan_clusters(scratch: Path) -> None:
    """Stop the private clusters of test runs whose pytest process is gone."""
    clusters = cache_root() / "kwok" / "clusters"
    if os.environ.get("HEADROOM_KWOK_WORKDIR"):
        clusters = Path(os.environ["HEADROOM_KWOK_WORKDIR"]) / "clusters"
    for state in clusters.glob(f"{CLUSTER_PREFIX}*") if clusters.is_dir() else []:
        owner = state.name.removeprefix(CLUSTER_PREFIX)
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            NodeCluster(state.name, scratch / f"{state.name}.kubeconfig").down()


@dataclass
class RealNode:
    name: str
    cluster: NodeCluster
    kubectl_path: str
    images: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def state(self) -> Path:
        return cache_root() / "node" / self.name

    def env(self) -> dict[str, str]:
        env = {**os.environ, "HEADROOM_NODE_NAME": self.name, "KUBECONFIG": str(self.kubeconfig)}
        env["HEADROOM_NODE_IMAGES"] = " ".join(self.images)
        # Names the local cluster, whose CA signs the kubelet's client certificate.
        env["HEADROOM_CLUSTER_NAME"] = self.cluster.name or "headroom"
        return env

    def namespace(self, prefix: str) -> str:
        """A fresh namespace in the node's cluster, once its default ServiceAccount exists."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        done = self.kubectl("create", "namespace", name)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while self.kubectl("-n", name, "get", "serviceaccount", "default").returncode != 0:
            assert time.monotonic() < deadline, f"namespace {name}: no default ServiceAccount"
            time.sleep(0.2)
        return name

    def up(self) -> None:
        started = time.monotonic()
        done = run([str(NODE_SCRIPTS / "up.sh")], env=self.env(), timeout=600)
        if done.returncode != 0:
            down = self.down()
            raise RuntimeError(
                f"hack/node/up.sh for {self.name} failed ({done.returncode}):\n"
                f"{tail(done.stderr)}\ndown.sh: {tail(down.stderr, 10)}"
            )
        print(f"[node] {self.name} up in {time.monotonic() - started:.1f}s")

    def down(self) -> subprocess.CompletedProcess[str]:
        return run([str(NODE_SCRIPTS / "down.sh")], env=self.env(), timeout=300)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run([self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args], input=input)

    def get(self) -> dict[str, Any]:
        done = self.kubectl("get", "node", self.name, "-o", "json")
        assert done.returncode == 0, done.stderr
        node: dict[str, Any] = json.loads(done.stdout)
        return node

    @property
    def ip(self) -> str:
        addresses = self.get()["status"]["addresses"]
        return next(a["address"] for a in addresses if a["type"] == "InternalIP")

    def import_image(self, tar: str) -> None:
        """Import an OCI archive into the node's containerd (images never come from a registry)."""
        ctr = Path(build_node()["BIN_DIR"]) / "bin" / "ctr"
        address = str(self.state / "containerd.sock")
        done = run([str(ctr), "--address", address, "-n", "k8s.io", "images", "import", tar])
        assert done.returncode == 0, done.stderr

    def pod_manifest(self, name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
        """A pod for this node only: its name as the node selector, and the taint tolerated."""
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {**NODE_LABEL, "kubernetes.io/hostname": self.name},
                "tolerations": [NODE_TOLERATION],
                "terminationGracePeriodSeconds": 5,
                "containers": [{"name": "main", "imagePullPolicy": "Never", **container}],
                **spec,
            },
        }

    def run_pod(
        self, namespace: str, manifest: dict[str, Any], timeout: float = 120
    ) -> dict[str, Any]:
        """Create the pod and wait until its container has terminated; the pod, as read then."""
        done = self.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(manifest))
        assert done.returncode == 0, done.stderr
        name = manifest["metadata"]["name"]
        deadline = time.monotonic() + timeout
        pod: dict[str, Any] = {}
        while time.monotonic() < deadline:
            got = self.kubectl("-n", namespace, "get", "pod", name, "-o", "json")
            if got.returncode == 0:
                pod = json.loads(got.stdout)
                statuses = pod.get("status", {}).get("containerStatuses") or []
                phase = pod.get("status", {}).get("phase")
                if (
                    statuses
                    and "terminated" in statuses[0]["state"]
                    and phase
                    in (
                        "Succeeded",
                        "Failed",
                    )
                ):
                    return pod
            time.sleep(0.2)
        events = self.kubectl("-n", namespace, "get", "events", "-o", "wide").stdout
        raise AssertionError(
            f"pod {name} did not terminate within {timeout}s: {json.dumps(pod.get('status'))}\n"
            f"events:\n{tail(events, 20)}\nkubelet:\n{self.kubelet_log()}"
        )

    def container_logs(self) -> list[Path]:
        """The log files of every container of the node's pods still present (the kubelet
        removes a pod's logs with the pod), oldest first."""
        found = (self.state / "pod-logs").glob("*/*/*.log")
        return sorted(found, key=lambda p: p.stat().st_mtime if p.exists() else 0.0)

    def log_files(self) -> list[Path]:
        """The kubelet's and containerd's own logs."""
        return sorted((self.state / "logs").glob("*.log"))

    def kubelet_log(self, lines: int = 30) -> str:
        path = self.state / "logs" / "kubelet.log"
        return tail(path.read_text(errors="replace"), lines) if path.exists() else "(no log)"


def session_node_name() -> str:
    return f"{TEST_PREFIX}{os.getpid()}"


def remove_orphans(cluster: NodeCluster, kubectl_path: str) -> None:
    """Stop the nodes of test runs whose pytest process is gone."""
    nodes = cache_root() / "node"
    for state in nodes.glob(f"{TEST_PREFIX}*") if nodes.is_dir() else []:
        if not state.is_dir():
            continue
        owner = state.name.removeprefix(TEST_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            RealNode(state.name, cluster, kubectl_path).down()


# --- what the host looks like, before and after a node -----------------------------------


def _sysctls() -> dict[str, str]:
    values = {}
    for path in Path("/proc/sys").rglob("*"):
        try:
            if not path.is_file() or not os.access(path, os.R_OK):
                continue
            key = ".".join(path.relative_to("/proc/sys").parts)
            if VOLATILE_SYSCTLS.match(key):
                continue
            values[key] = path.read_text().strip()
        except OSError:
            continue  # write-only or vanished (a veth of another test)
    return values


def _mounts() -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    # mount point and fs type (field 5, and the first field after " - ")
    return sorted(f"{line.split()[4]} {line.split(' - ')[1].split()[0]}" for line in lines)


def _cgroups() -> list[str]:
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if hierarchy.is_dir():
            found += [str(d) for d in hierarchy.iterdir() if d.is_dir()]
    return sorted(found)


def _firewall() -> str:
    """iptables rules when iptables is installed; the loaded legacy tables otherwise."""
    save = shutil.which("iptables-save")
    text = ""
    if save:
        done = run([save])
        text = "\n".join(
            re.sub(r"\[\d+:\d+\]", "", line)
            for line in done.stdout.splitlines()
            if not line.startswith("#")
        )
    for name in ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"):
        if Path(name).exists():
            text += f"\n{name}: {Path(name).read_text().strip()}"
    return text


def _links() -> list[str]:
    return sorted(p.name for p in Path("/sys/class/net").iterdir())


@dataclass
class HostSnapshot:
    sysctls: dict[str, str]
    mounts: list[str]
    cgroups: list[str]
    links: list[str]
    firewall: str
    paths: dict[str, bool]

    @classmethod
    def take(cls) -> HostSnapshot:
        return cls(
            _sysctls(),
            _mounts(),
            _cgroups(),
            _links(),
            _firewall(),
            {p: os.path.lexists(p) for p in HOST_PATHS},
        )

    def differences(self, later: HostSnapshot) -> list[str]:
        diffs = []
        for key in sorted(set(self.sysctls) | set(later.sysctls)):
            old, new = self.sysctls.get(key), later.sysctls.get(key)
            if old != new:
                diffs.append(f"sysctl {key}: {old!r} -> {new!r}")
        for what in ("mounts", "cgroups", "links"):
            old, new = set(getattr(self, what)), set(getattr(later, what))
            diffs += [f"{what}: + {x}" for x in sorted(new - old)]
            diffs += [f"{what}: - {x}" for x in sorted(old - new)]
        if self.firewall != later.firewall:
            diffs.append(f"firewall changed:\n{self.firewall}\n->\n{later.firewall}")
        diffs += [
            f"path {p}: existed={self.paths[p]} -> {later.paths[p]}"
            for p in HOST_PATHS
            if self.paths[p] != later.paths[p]
        ]
        return diffs


def node_processes(node: RealNode) -> list[str]:
    """Live processes (not zombies) whose command line names the node's state dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(node.state) in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found
