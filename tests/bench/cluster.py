"""A dedicated local control plane for one benchmark run, so the apiserver's counters and its
audit log hold nothing but what the run did (the shared `headroom` cluster serves other
tests at the same time).

`up()` starts an independent kwok cluster (its own etcd, apiserver and ports) under another
name, with an audit log of every request (to attribute requests to the operator by user agent)
and kwok nodes large enough for thousands of pods; `down()` removes it and all its state.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from headroom.kube.transport import USER_AGENT

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "hack" / "cluster"
WORK = REPO / ".local" / "bench"
# Named after the caller's cluster, so two worktrees' benchmarks never share a control plane.
CLUSTER_NAME = f"{os.environ.get('HEADROOM_CLUSTER_NAME') or 'headroom'}-bench"
BENCH_AGENT = "headroom-bench"  # user agent of every request the benchmark itself makes
FLOOR_AGENT = f"{BENCH_AGENT}/floor"  # ... but for the floor client (tests/bench/floor.py)

# Every request at Metadata level, once (at completion): enough to count requests per client.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
omitManagedFields: true
rules:
- level: Metadata
"""

# kwok nodes default to 110 pods and 32 CPUs each (agent pods request 250m): raise both so
# three fake nodes hold every pod of the 5,000-session run.
NODE_CAPACITY = {"pods": "4000", "cpu": "2000", "memory": "16Ti"}

RequestKey = tuple[str, str, str, str]  # verb, group, resource, subresource


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass
class BenchCluster:
    kubeconfig: Path
    kubectl: str
    audit_log: Path

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def up(cls) -> BenchCluster:
        WORK.mkdir(parents=True, exist_ok=True)
        policy = WORK / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        kubeconfig = WORK / "kubeconfig"
        env = {
            **os.environ,
            "HEADROOM_CLUSTER_NAME": CLUSTER_NAME,
            "HEADROOM_KUBECONFIG_OUT": str(kubeconfig),
            # kwokctl reads this env var as the default of --kube-audit-policy
            "KWOK_KUBE_AUDIT_POLICY": str(policy),
        }
        env.pop("HEADROOM_CLUSTER_LEASE", None)  # not a test lease: we own and stop it
        # A leftover from an interrupted run would reuse a cluster full of old objects.
        _run([str(SCRIPTS / "down.sh")], env)
        _run([str(SCRIPTS / "up.sh")], env)
        bin_dir = Path(_run([str(SCRIPTS / "build.sh")]).strip().splitlines()[-1])
        audit = _kwok_workdir() / "clusters" / CLUSTER_NAME / "logs" / "audit.log"
        if not audit.exists():
            raise RuntimeError(f"the bench cluster has no audit log at {audit}")
        cluster = cls(kubeconfig, str(bin_dir / "kubectl"), audit)
        cluster._grow_nodes()
        cluster._install_crds()
        return cluster

    @staticmethod
    def down() -> None:
        env = {**os.environ, "HEADROOM_CLUSTER_NAME": CLUSTER_NAME}
        env.pop("HEADROOM_CLUSTER_LEASE", None)
        _run([str(SCRIPTS / "down.sh")], env)

    def kubectl_run(self, *args: str) -> str:
        return _run([self.kubectl, "--kubeconfig", str(self.kubeconfig), *args])

    def _grow_nodes(self) -> None:
        patch = json.dumps({"status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY}})
        for node in self.kubectl_run("get", "nodes", "-l", "type=kwok", "-o", "name").split():
            self.kubectl_run("patch", node, "--subresource=status", "--type=merge", "-p", patch)

    def _install_crds(self) -> None:
        """Headroom's CRDs, and kopf's peering CRDs for the shards' operators (--peering)."""
        crds = REPO / "crds"
        peering = REPO / "manifests" / "kopf" / "peering-crds.yaml"
        self.kubectl_run("apply", "--server-side", "-f", str(crds), "-f", str(peering))
        names = self.kubectl_run("get", "-f", str(crds), "-f", str(peering), "-o", "name").split()
        self.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", *names)

    # --- what the apiserver says ------------------------------------------------------------

    def request_counts(self) -> Counter[RequestKey]:
        """apiserver_request_total summed over response codes (and scope, version)."""
        counts: Counter[RequestKey] = Counter()
        for line in self.kubectl_run("get", "--raw", "/metrics").splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
            labels = dict(_labels(labels_text))
            key = (
                labels.get("verb", ""),
                labels.get("group", ""),
                labels.get("resource", ""),
                labels.get("subresource", ""),
            )
            counts[key] += int(float(value))
        return counts

    def audit_offset(self) -> int:
        return self.audit_log.stat().st_size

    def audit_since(self, offset: int, start: float, end: float) -> Iterator[dict[str, Any]]:
        """Audit events written after `offset` for requests received in [start, end] (epoch
        seconds). The log is written as requests complete, so wait a moment before reading."""
        with self.audit_log.open("rb") as f:
            f.seek(offset)
            for raw in f:
                try:
                    event = json.loads(raw)
                except ValueError:  # a line still being written
                    continue
                received = _epoch(event.get("requestReceivedTimestamp", ""))
                if start <= received <= end:
                    yield event


def _kwok_workdir() -> Path:
    """Where kwokctl keeps cluster state: the same rule as hack/cluster/lib.sh."""
    if os.environ.get("HEADROOM_KWOK_WORKDIR"):
        return Path(os.environ["HEADROOM_KWOK_WORKDIR"])
    cache = os.environ.get("HEADROOM_CACHE")
    if cache:
        return Path(cache) / "kwok"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "headroom" / "kwok"


def _labels(text: str) -> Iterator[tuple[str, str]]:
    # label="value",label2="value2" (values here never contain quotes or commas)
    for part in text.split(","):
        key, _, value = part.partition("=")
        yield key, value.strip('"')


def _epoch(stamp: str) -> float:
    if not stamp:
        return 0.0
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def client_of(event: dict[str, Any]) -> str:
    """Who made a request, from its user agent: the operator's two HTTP clients (kopf's own,
    and headroom.kube.transport's) count as the operator."""
    agent = str(event.get("userAgent", ""))
    if agent.startswith(FLOOR_AGENT):
        return "floor"
    if agent.startswith(BENCH_AGENT):
        return "benchmark"
    if agent.startswith(("kopf/", USER_AGENT)):
        return "operator"
    for component in ("kube-scheduler", "kube-controller-manager", "kwok", "kubectl"):
        if component in agent:
            return component
    if agent.startswith("kube-apiserver"):
        return "kube-apiserver"
    return agent.split("/")[0] or "unknown"
