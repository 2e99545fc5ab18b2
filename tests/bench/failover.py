"""One failover benchmark run: N sessions over M accounts, all Running on kwok nodes, then K
sessions' pods end `walled` at once, as a kubelet would report it.

The driver creates objects and patches pods; a separate recorder process stamps every watch
event with its local receive time (see recorder.py); the apiserver's own counters and audit
log count the requests; /proc of the operator process gives its CPU time and peak RSS.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client, config
from tests.bench.cluster import BENCH_AGENT, WORK, BenchCluster, RequestKey, client_of
from tests.bench.timeline import Timeline
from tests.support.operator import terminated_status, wait_for

from headroom.contract.pod import LABEL_MANAGED, MANAGER
from headroom.contract.termination import EXIT_CODES, Outcome, TerminationMessage, encode

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

    @property
    def total(self) -> int:
        return sum(self.by_key.values())


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
        delta = after - self.before  # Counter subtraction keeps positive counts only
        return Window(t1 - self.t0, delta, by_client, operator)


class Operator:
    def __init__(self, namespace: str, log: Path, profile: Path | None) -> None:
        self.namespace = namespace
        self.log = log
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, kubeconfig: Path) -> None:
        # Production flags but for the metrics port (a free one) and the liveness endpoint.
        operator = ["operator", "-n", self.namespace, "--metrics-port", "0", "--liveness", ""]
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
            if client_of(event) == "operator"
        )
        if ours <= 1:
            return time.monotonic() - started
    raise TimeoutError("the operator never went quiet within 900s after setup")


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


def run(
    cluster: BenchCluster,
    n: int,
    *,
    idle_seconds: float,
    profile: bool = False,
    log: Any = print,
) -> RunResult:
    ns = f"bench-{n}"
    k = n // 4
    cap = max_sessions_for(n, ACCOUNTS)
    WORK.mkdir(parents=True, exist_ok=True)
    events_file = WORK / f"{ns}.events.jsonl"
    events_file.unlink(missing_ok=True)
    profile_path = WORK / f"profile-{n}.txt" if profile else None  # and .pyisession
    driver = Driver(cluster.kubeconfig, ns)
    operator = Operator(ns, WORK / f"operator-{n}.log", profile_path)
    recorder: subprocess.Popen[bytes] | None = None
    timeline = Timeline(events_file)
    measure = Measure(cluster)
    sessions = [f"s-{i:05d}" for i in range(n)]
    setup_timeout = 120 + n * 0.5
    try:
        driver.namespace()
        recorder = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.recorder", str(cluster.kubeconfig), ns,
             str(events_file)],
            cwd=str(REPO),
            stderr=(WORK / f"recorder-{n}.log").open("wb"),
        )  # fmt: skip

        def recorder_ready() -> bool:
            if recorder is not None and recorder.poll() is not None:
                raise RuntimeError(f"the recorder exited ({recorder.returncode})")
            timeline.update()
            return timeline.ready

        wait_for("the recorder's watches", recorder_ready, 60, 0.5)
        operator.start(cluster.kubeconfig)
        started = time.monotonic()
        log(f"[N={n}] {ACCOUNTS} accounts (maxSessions {cap}), {n} bound workspaces")
        driver.all(lambda i: driver.account(f"acct-{i:02d}", cap), list(range(ACCOUNTS)))
        driver.all(driver.workspace, sessions)
        wait_for(
            "every account Available", lambda: driver.available_accounts() == ACCOUNTS, 120, 0.5
        )
        log(f"[N={n}] creating {n} sessions")
        driver.all(driver.session, sessions)

        def all_running() -> tuple[int, int] | None:
            operator.check_alive()
            recorder_ready()
            s, p = len(timeline.running_sessions(1)), len(timeline.running_pods())
            return (s, p) if s == n and p == n else None

        wait_for(f"{n} sessions and pods Running", all_running, setup_timeout, 1.0)
        setup_seconds = time.monotonic() - started
        log(f"[N={n}] all Running after {setup_seconds:.0f}s; settle, {idle_seconds:.0f}s idle")
        settle_seconds = settle(cluster, operator)
        log(f"[N={n}] the operator was quiet {settle_seconds:.0f}s after that")

        measure.start()
        time.sleep(idle_seconds)
        idle = measure.stop()
        usage_idle = proc_usage(operator.pid)

        timeline.update()
        walled_sessions, walled_accounts = choose_walled(
            {s: timeline.sessions[s] for s in sessions}, k
        )
        accounts_before = {s: timeline.sessions[s]["acc"] for s in walled_sessions}
        resets = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = encode(
            TerminationMessage(
                outcome=Outcome.WALLED,
                window="five_hour",
                resets_at=resets,
                utilization={"five_hour": 1.0},
                evidence=WALL_MESSAGE,
                transcript=True,
            )
        )
        log(f"[N={n}] walling {k} sessions on {len(walled_accounts)} accounts at once")
        cpu_before = proc_usage(operator.pid).cpu_seconds
        measure.start()
        # Submit every patch before waiting on any: the K pods end as close to at once as
        # WORKERS concurrent connections allow.
        driver.all(lambda s: driver.end_walled(f"{s}-1", message), walled_sessions)

        def moved() -> bool:
            operator.check_alive()
            recorder_ready()
            again = timeline.running_sessions(2)
            pods = timeline.running_pods()
            return all(s in again and f"{s}-2" in pods for s in walled_sessions)

        wait_for(f"{k} walled sessions Running again", moved, 120 + k * 0.5, 0.5)
        time.sleep(5)  # the coalesced account status writes (every 1s) and stragglers
        failover = measure.stop()
        usage = proc_usage(operator.pid)
        timeline.update()
    finally:
        operator.stop()
        if recorder is not None:
            recorder.terminate()
            recorder.wait(10)
        driver.close()

    to_created, to_running, to_pod_running, problems = [], [], [], []
    onto_walled = 0
    first_end, last_running = math.inf, 0.0
    for s in walled_sessions:
        ended = timeline.pod_terminated.get(f"{s}-1")
        created = timeline.pod_added.get(f"{s}-2")
        running = timeline.session_running.get((s, 2))
        pod_running = timeline.pod_running.get(f"{s}-2")
        if ended is None or created is None or running is None or pod_running is None:
            problems.append(f"{s}: incomplete timeline {ended=} {created=} {running=}")
            continue
        to_created.append(created - ended)
        to_running.append(running - ended)
        to_pod_running.append(pod_running - ended)
        first_end, last_running = min(first_end, ended), max(last_running, running)
        account, before = timeline.sessions[s]["acc"], timeline.pods.get(f"{s}-2", {}).get("a")
        if account == accounts_before[s]:
            problems.append(f"{s}: stayed on its walled account {account}")
        if before != account:
            problems.append(f"{s}: status says {account}, its pod says {before}")
        if account in walled_accounts:
            onto_walled += 1
    for account, live in timeline.live_pods_by_account().items():
        if live > cap:
            problems.append(f"{account}: {live} live pods > maxSessions {cap}")
    for session, live in timeline.live_pods_by_session().items():
        if live > 1:
            problems.append(f"{session}: {live} live pods")
    return RunResult(
        n=n,
        k=k,
        accounts=ACCOUNTS,
        max_sessions=cap,
        setup_seconds=setup_seconds,
        settle_seconds=settle_seconds,
        to_pod_created=to_created,
        to_session_running=to_running,
        to_pod_running=to_pod_running,
        failover_seconds=last_running - first_end,
        cpu_failover=usage.cpu_seconds - cpu_before,
        cpu_total=usage.cpu_seconds,
        rss_peak_mb=usage.rss_peak_mb,
        rss_idle_mb=usage_idle.rss_now_mb,
        idle=idle,
        failover=failover,
        problems=problems,
        onto_walled=onto_walled,
        profile=profile_path,
    )
