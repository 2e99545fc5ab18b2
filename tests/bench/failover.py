"""The pieces of one failover benchmark run (wave.py drives them): N sessions over M accounts,
all Running on kwok nodes, then K sessions' pods end `walled` at once, as a kubelet would
report it.

The driver creates objects and patches pods; a separate recorder process stamps every watch
event with its local receive time (see recorder.py); the apiserver's own counters and audit
log count the requests; /proc of the operator process gives its CPU time and peak RSS.
Then the operator is stopped and the floor client (floor.py) moves the same sessions once
more, timed the same way.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from tests.bench.cluster import BENCH_AGENT, BenchCluster, RequestKey, client_of
from tests.support.operator import terminated_status, wait_for

from headroom.contract.pod import LABEL_MANAGED, MANAGER
from headroom.contract.termination import EXIT_CODES, Outcome

GROUP, VERSION = "headroom.dev", "v1alpha1"
REPO = Path(__file__).resolve().parents[2]
ACCOUNTS = 50
WORKERS = 32  # concurrent API calls of the driver (creating objects, patching pods)
WALL_MESSAGE = "You've hit your 5-hour limit"


# The audit log names verbs as RBAC does; apiserver_request_total as HTTP does.
AUDIT_VERBS = {
    "create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE",
    "deletecollection": "DELETE", "get": "GET", "list": "LIST", "watch": "WATCH",
}  # fmt: skip


@dataclass
class Usage:
    cpu_seconds: float
    rss_peak_mb: float
    rss_now_mb: float


def proc_usage(pid: int) -> Usage:
    """utime+stime and VmHWM/VmRSS of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    mem = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            mem[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return Usage(cpu, mem.get("VmHWM", 0.0), mem.get("VmRSS", 0.0))


@dataclass
class Window:
    """API requests over a stretch of time: apiserver counters, and the audit log by client."""

    seconds: float
    by_key: Counter[RequestKey]
    by_client: Counter[str]
    operator_by_key: Counter[RequestKey]
    # The operator's requests by the namespace of their object: tells shards apart (their
    # operators share a user agent).
    operator_by_namespace: Counter[str] = field(default_factory=Counter)
    operator_by_namespace_key: Counter[tuple[str, RequestKey]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_key.values())


@dataclass
class FloorResult:
    """The floor client's wave (tests/bench/floor.py): the same sessions walled again."""

    to_pod_created: list[float]
    to_session_running: list[float]
    failover_seconds: float
    cpu_seconds: float
    window: Window
    problems: list[str] = field(default_factory=list)

    def requests_per_failover(self, k: int) -> float:
        return self.window.by_client["floor"] / k


@dataclass
class RunResult:
    n: int
    k: int
    accounts: int
    max_sessions: int
    setup_seconds: float
    settle_seconds: float
    to_pod_created: list[float]
    to_session_running: list[float]
    to_pod_running: list[float]
    failover_seconds: float  # first pod terminated -> last session Running again
    cpu_failover: float
    cpu_total: float
    rss_peak_mb: float
    rss_idle_mb: float
    idle: Window
    failover: Window
    problems: list[str] = field(default_factory=list)
    # Sessions placed on an account whose own wall was reported in the same wave but not yet
    # processed: in real life they would hit that wall and move once more.
    onto_walled: int = 0
    profile: Path | None = None
    floor: FloorResult | None = None
    shard: str = ""  # the namespace, when several operators (shards) ran side by side
    shards: int = 1

    @property
    def failovers_in_cluster(self) -> int:
        """Failovers the apiserver served in the wave: K per shard."""
        return self.k * self.shards

    def operator_requests(self, window: Window) -> Counter[RequestKey]:
        """This row's operator's requests by verb and resource: with shards, those on objects
        of its own namespace."""
        if not self.shard:
            return window.operator_by_key
        return Counter(
            {
                key: n
                for (ns, key), n in window.operator_by_namespace_key.items()
                if ns == self.shard
            }
        )

    @property
    def operator_idle_per_minute(self) -> float:
        count = (
            self.idle.operator_by_namespace[self.shard]
            if self.shard
            else self.idle.by_client["operator"]
        )
        return count / self.idle.seconds * 60

    @property
    def cpu_ms_per_failover(self) -> float:
        return self.cpu_failover / self.k * 1000

    @property
    def operator_requests_per_failover(self) -> float:
        if self.shard:  # both shards' operators share a user agent: count by namespace
            return self.failover.operator_by_namespace[self.shard] / self.k
        return self.failover.by_client["operator"] / self.k


class Measure:
    """Counts what the apiserver served between `start()` and `stop()`."""

    def __init__(self, cluster: BenchCluster) -> None:
        self.cluster = cluster

    def start(self) -> None:
        self.before = self.cluster.request_counts()
        self.offset = self.cluster.audit_offset()
        self.t0 = time.time()

    def stop(self) -> Window:
        t1 = time.time()
        after = self.cluster.request_counts()
        time.sleep(1.0)  # the audit log is written as requests complete
        by_client: Counter[str] = Counter()
        operator: Counter[RequestKey] = Counter()
        by_namespace: Counter[str] = Counter()
        by_namespace_key: Counter[tuple[str, RequestKey]] = Counter()
        for event in self.cluster.audit_since(self.offset, self.t0, t1):
            who = client_of(event)
            by_client[who] += 1
            if who == "operator":
                ref = event.get("objectRef") or {}
                key = (
                    AUDIT_VERBS.get(str(event.get("verb", "")), str(event.get("verb", ""))),
                    ref.get("apiGroup", ""),
                    ref.get("resource", ""),
                    ref.get("subresource", ""),
                )
                operator[key] += 1
                by_namespace[ref.get("namespace", "")] += 1
                by_namespace_key[(ref.get("namespace", ""), key)] += 1
        delta = after - self.before  # Counter subtraction keeps positive counts only
        return Window(t1 - self.t0, delta, by_client, operator, by_namespace, by_namespace_key)


class Operator:
    def __init__(
        self, namespace: str, log: Path, profile: Path | None, extra: list[str] | None = None
    ) -> None:
        self.namespace = namespace
        self.log = log
        self.profile = profile
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, kubeconfig: Path) -> None:
        # Production flags but for the metrics port (a free one) and the liveness endpoint.
        operator = ["operator", "-n", self.namespace, "--metrics-port", "0", "--liveness", "",
                    *self.extra]  # fmt: skip
        args = ["-m", "headroom", *operator]
        if self.profile is not None:
            args = ["-m", "tests.bench.profile_operator", str(self.profile), *operator]
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited ({self.proc.returncode}); see {self.log}")
        return self.proc.pid

    def check_alive(self) -> None:
        """Fail fast (instead of at a wait's deadline) if the operator died."""
        _ = self.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120 if self.profile else 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Driver:
    """Creates the scene through the API with a pool of threads (raw JSON, no typed models)."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
        configuration.connection_pool_maxsize = WORKERS
        self.api = client.ApiClient(configuration)
        self.api.user_agent = f"{BENCH_AGENT}/driver"
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.ns = namespace
        self.pool = ThreadPoolExecutor(WORKERS)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.api.close()

    def all(self, fn: Any, items: list[Any]) -> None:
        for future in [self.pool.submit(fn, item) for item in items]:
            future.result()

    def namespace(self) -> None:
        self.core.create_namespace({"metadata": {"name": self.ns}}, _preload_content=False)
        wait_for(
            "the namespace's default ServiceAccount",
            lambda: (
                self.core.list_namespaced_service_account(
                    self.ns, field_selector="metadata.name=default"
                ).items
            ),
            60,
            0.5,
        )

    def account(self, name: str, max_sessions: int) -> None:
        secret = {"metadata": {"name": f"{name}-claude"}, "stringData": {"token": f"tok-{name}"}}
        self.core.create_namespaced_secret(self.ns, secret, _preload_content=False)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClaudeAccount",
            "metadata": {"name": name, "labels": {"tier": "bench"}},
            "spec": {
                "credentials": {"secretRef": {"name": f"{name}-claude"}, "type": "OAuthToken"},
                "maxSessions": max_sessions,
            },
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "claudeaccounts", body, _preload_content=False
        )

    def available_accounts(self) -> int:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.ns, "claudeaccounts"
        )["items"]
        return sum(1 for a in items if (a.get("status") or {}).get("phase") == "Available")

    def workspace(self, session: str) -> None:
        """The session's workspace PVC, already bound to a PV of its own. The operator creates
        the claim itself when it is missing, but nothing in this cluster would provision it, and
        the scheduler keeps pods with unbound claims Pending. Statuses are written here too,
        so the PV controller (20 requests/s) has nothing to catch up on during the run."""
        claim, volume = f"{session}-workspace", f"{self.ns}-{session}"
        pvc = {
            "metadata": {
                "name": claim,
                # Labelled as the operator labels the claims it makes itself.
                "labels": {LABEL_MANAGED: MANAGER},
                "annotations": {"pv.kubernetes.io/bind-completed": "yes"},
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": volume,
                "storageClassName": "",
            },
        }
        made = json.loads(
            self.core.create_namespaced_persistent_volume_claim(
                self.ns, pvc, _preload_content=False
            ).data
        )
        pv = {
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/headroom-bench/{volume}"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": self.ns,
                    "name": claim,
                    "uid": made["metadata"]["uid"],
                },
            },
        }
        self.core.create_persistent_volume(pv, _preload_content=False)
        self.core.patch_persistent_volume_status(
            volume, {"status": {"phase": "Bound"}}, _preload_content=False
        )
        self.core.patch_namespaced_persistent_volume_claim_status(
            claim,
            self.ns,
            {
                "status": {
                    "phase": "Bound",
                    "accessModes": ["ReadWriteOnce"],
                    "capacity": {"storage": "1Gi"},
                }
            },
            _preload_content=False,
        )

    def session(self, name: str) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "AgentSession",
            "metadata": {"name": name},
            "spec": {
                "prompt": f"benchmark task {name}",
                "accountSelector": {"matchLabels": {"tier": "bench"}},
            },
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "agentsessions", body, _preload_content=False
        )

    def end_walled(self, pod: str, message: str) -> None:
        """What a kubelet writes when the agent exits 75 with a wall in its termination log."""
        status = terminated_status(EXIT_CODES[Outcome.WALLED], message)
        self.core.patch_namespaced_pod_status(
            pod, self.ns, {"status": status}, _preload_content=False
        )


def settle(cluster: BenchCluster, operator: Operator, window: float = 5.0) -> float:
    """Wait until the operator has worked through what setup left queued (it may still be
    reconciling after every pod already runs): no more than one request of its own in a
    `window`. Returns how long that took; the idle measurement starts only then."""
    started = time.monotonic()
    deadline = started + 900
    while time.monotonic() < deadline:
        operator.check_alive()
        offset, t0 = cluster.audit_offset(), time.time()
        time.sleep(window)
        time.sleep(0.5)  # let the audit log catch up with the window's last requests
        ours = sum(
            1
            for event in cluster.audit_since(offset, t0, t0 + window)
            if client_of(event) == "operator" and not _peering(event)
        )
        if ours <= 1:
            return time.monotonic() - started
    raise TimeoutError("the operator never went quiet within 900s after setup")


def _peering(event: dict[str, Any]) -> bool:
    """A request on kopf's peering objects: with --peering (shards), each operator's
    keep-alive and leadership check, a standing cost every few seconds, not setup's backlog."""
    return (event.get("objectRef") or {}).get("resource") == "kopfpeerings"


def max_sessions_for(n: int, accounts: int) -> int:
    """Room for every session plus a quarter walled: 1.5x the even share per account."""
    return max(2, math.ceil(1.5 * n / accounts))


def choose_walled(sessions: dict[str, dict[str, Any]], k: int) -> tuple[list[str], set[str]]:
    """K sessions, whole accounts first (a wall hits every session of its account), in
    account-name order; returns the sessions and the accounts they wall."""
    by_account: dict[str, list[str]] = {}
    for name, s in sorted(sessions.items()):
        by_account.setdefault(s["acc"], []).append(name)
    chosen: list[str] = []
    walled: set[str] = set()
    for account in sorted(by_account):
        for name in by_account[account]:
            if len(chosen) < k:
                chosen.append(name)
                walled.add(account)
    return chosen, walled
