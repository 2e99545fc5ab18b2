"""One benchmark run of size N, phase by phase: the scene in each shard's namespace, the idle
window, the operator's failover wave, then (one shard only) the floor's wave over the same
sessions. The pieces it drives (Driver, Operator, Measure, the results) are in failover.py.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.bench.cluster import WORK, BenchCluster
from tests.bench.failover import (
    ACCOUNTS,
    REPO,
    WALL_MESSAGE,
    Driver,
    FloorResult,
    Measure,
    Operator,
    RunResult,
    Window,
    choose_walled,
    max_sessions_for,
    proc_usage,
    settle,
)
from tests.bench.timeline import Timeline
from tests.support.operator import wait_for

from headroom.contract.termination import Outcome, TerminationMessage, encode


@dataclass
class Shard:
    """One namespace of the run and what serves and watches it: its own operator and its own
    recorder. A plain run has one; BENCH_SHARDS=2 runs two side by side, one operator each."""

    ns: str
    n: int
    driver: Driver
    operator: Operator
    timeline: Timeline
    recorder: subprocess.Popen[bytes] | None = None
    sessions: list[str] = field(default_factory=list)
    walled: list[str] = field(default_factory=list)
    walled_accounts: set[str] = field(default_factory=set)
    accounts_before: dict[str, str] = field(default_factory=dict)
    # What the operator's wave left, read before the floor's wave changes it.
    operator_accounts: dict[str, str] = field(default_factory=dict)  # session -> status
    operator_pod_accounts: dict[str, str] = field(default_factory=dict)  # session -> its pod
    operator_overruns: list[str] = field(default_factory=list)

    def after_operator_wave(self, cap: int) -> None:
        """Where the operator put every walled session, and any account over maxSessions or
        session with two live pods, as the recorder saw them once every session moved."""
        self.timeline.update()
        t = self.timeline
        for s in self.walled:
            self.operator_accounts[s] = t.sessions[s]["acc"]
            self.operator_pod_accounts[s] = t.pods.get(f"{s}-2", {}).get("a", "")
        for account, live in t.live_pods_by_account().items():
            if live > cap:
                self.operator_overruns.append(f"{account}: {live} live pods > maxSessions {cap}")
        for session, live in t.live_pods_by_session().items():
            if live > 1:
                self.operator_overruns.append(f"{session}: {live} live pods")

    def start_recorder(self, kubeconfig: Path, events: Path, log: Path) -> None:
        self.recorder = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.recorder", str(kubeconfig), self.ns, str(events)],
            cwd=str(REPO),
            stderr=log.open("wb"),
        )

    def watched(self) -> None:
        """Fail fast if the recorder died; read what it wrote since the last look."""
        if self.recorder is not None and self.recorder.poll() is not None:
            raise RuntimeError(f"the recorder of {self.ns} exited ({self.recorder.returncode})")
        self.timeline.update()

    def all_running(self) -> bool:
        self.operator.check_alive()
        self.watched()
        t = self.timeline
        return len(t.running_sessions(1)) == self.n and len(t.running_pods()) == self.n

    def moved(self, attempt: int, check_operator: bool = True) -> bool:
        if check_operator:
            self.operator.check_alive()
        self.watched()
        again, pods = self.timeline.running_sessions(attempt), self.timeline.running_pods()
        return all(s in again and f"{s}-{attempt}" in pods for s in self.walled)

    def close(self) -> None:
        self.operator.stop()
        if self.recorder is not None:
            self.recorder.terminate()
            self.recorder.wait(10)
        self.driver.close()


def wall_message() -> str:
    resets = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return encode(
        TerminationMessage(
            outcome=Outcome.WALLED,
            window="five_hour",
            resets_at=resets,
            utilization={"five_hour": 1.0},
            evidence=WALL_MESSAGE,
            transcript=True,
        )
    )


def wall(shards: list[Shard], attempt: int) -> None:
    """End every chosen pod of every shard as a kubelet would report a wall. Every patch is
    submitted before any is waited on: the pods end as close to at once as WORKERS
    connections per shard allow."""
    message = wall_message()
    futures = [
        shard.driver.pool.submit(shard.driver.end_walled, f"{s}-{attempt}", message)
        for shard in shards
        for s in shard.walled
    ]
    for future in futures:
        future.result()


def run(
    cluster: BenchCluster,
    n: int,
    *,
    idle_seconds: float,
    profile: bool = False,
    shards: int = 1,
    floor: bool = True,
    log: Any = print,
) -> list[RunResult]:
    """One run of size N: one RunResult per shard (N sessions each). The floor wave runs
    only with a single shard (one operator to stop and stand in for)."""
    k = n // 4
    cap = max_sessions_for(n, ACCOUNTS)
    WORK.mkdir(parents=True, exist_ok=True)
    names = [f"bench-{n}"] if shards == 1 else [f"bench-{n}-{i}" for i in range(shards)]
    profile_path = WORK / f"profile-{n}.txt" if profile and shards == 1 else None
    group: list[Shard] = []
    for i, ns in enumerate(names):
        # Shards run as production would: each its own peering object (see docs/production.md).
        peering = ["--peering", f"headroom-{i}"] if shards > 1 else []
        (WORK / f"{ns}.events.jsonl").unlink(missing_ok=True)
        group.append(
            Shard(
                ns, n, Driver(cluster.kubeconfig, ns),
                Operator(ns, WORK / f"operator-{ns}.log", profile_path, peering),
                Timeline(WORK / f"{ns}.events.jsonl"),
                sessions=[f"s-{i:05d}" for i in range(n)],
            )
        )  # fmt: skip
    measure = Measure(cluster)
    tag = f"[N={n}{f' x{shards} shards' if shards > 1 else ''}]"
    try:
        setup_seconds = _setup(cluster, group, cap, tag, log)
        settle_seconds = max(settle(cluster, shard.operator) for shard in group)
        log(f"{tag} the operators were quiet {settle_seconds:.0f}s after that")
        measure.start()
        time.sleep(idle_seconds)
        idle = measure.stop()
        usage_idle = {s.ns: proc_usage(s.operator.pid) for s in group}
        for shard in group:
            shard.timeline.update()
            shard.walled, shard.walled_accounts = choose_walled(
                {s: shard.timeline.sessions[s] for s in shard.sessions}, k
            )
            shard.accounts_before = {s: shard.timeline.sessions[s]["acc"] for s in shard.walled}
        each = " per shard" if shards > 1 else ""
        log(f"{tag} walling {k} sessions{each} on {len(group[0].walled_accounts)} accounts")
        cpu_before = {s.ns: proc_usage(s.operator.pid).cpu_seconds for s in group}
        for shard in group:
            if shard.operator.profile is not None:
                os.kill(shard.operator.pid, signal.SIGUSR1)  # profile the wave, not the setup
        measure.start()
        wall(group, 1)
        wait_for(
            f"{k} walled sessions per shard Running again",
            lambda: all(shard.moved(2) for shard in group),
            120 + k * shards * 0.5,
            0.5,
        )
        time.sleep(5)  # the coalesced account status writes (every 1s) and stragglers
        failover = measure.stop()
        usage = {s.ns: proc_usage(s.operator.pid) for s in group}
        for shard in group:
            shard.operator.stop()  # SIGTERM, waited for: nothing of it runs during the floor
            shard.after_operator_wave(cap)
        floor_result = None
        if floor and shards == 1:
            floor_result = _floor_wave(cluster, group[0], measure, tag, log)
    finally:
        for shard in group:
            shard.close()
    results = []
    for shard in group:
        result = _result(shard, cap, setup_seconds, settle_seconds, idle, failover)
        result.cpu_failover = usage[shard.ns].cpu_seconds - cpu_before[shard.ns]
        result.cpu_total = usage[shard.ns].cpu_seconds
        result.rss_peak_mb = usage[shard.ns].rss_peak_mb
        result.rss_idle_mb = usage_idle[shard.ns].rss_now_mb
        result.profile = profile_path
        result.floor = floor_result
        result.shard = shard.ns if shards > 1 else ""
        result.shards = shards
        results.append(result)
    return results


def _setup(cluster: BenchCluster, group: list[Shard], cap: int, tag: str, log: Any) -> float:
    """Namespaces, recorders, operators, accounts, workspaces, sessions; until all Running."""
    n = group[0].n
    each = " per shard" if len(group) > 1 else ""
    for shard in group:
        shard.driver.namespace()
        shard.start_recorder(
            cluster.kubeconfig, shard.timeline.path, WORK / f"recorder-{shard.ns}.log"
        )

    def recorders_ready() -> bool:
        for shard in group:
            shard.watched()
        return all(shard.timeline.ready for shard in group)

    wait_for("the recorders' watches", recorders_ready, 60, 0.5)
    for shard in group:
        shard.operator.start(cluster.kubeconfig)
    started = time.monotonic()
    log(f"{tag} {ACCOUNTS} accounts (maxSessions {cap}), {n} bound workspaces{each}")
    for shard in group:
        d = shard.driver
        d.all(lambda i, d=d: d.account(f"acct-{i:02d}", cap), list(range(ACCOUNTS)))
        d.all(d.workspace, shard.sessions)
    wait_for(
        "every account Available",
        lambda: all(s.driver.available_accounts() == ACCOUNTS for s in group),
        120,
        0.5,
    )
    log(f"{tag} creating {n} sessions{each}")
    for shard in group:
        shard.driver.all(shard.driver.session, shard.sessions)
    timeout = 120 + n * len(group) * 0.5
    wait_for(f"{n} sessions and pods Running per shard",
             lambda: all(s.all_running() for s in group), timeout, 1.0)  # fmt: skip
    setup_seconds = time.monotonic() - started
    log(f"{tag} all Running after {setup_seconds:.0f}s; settle, then idle")
    return setup_seconds


def _floor_wave(
    cluster: BenchCluster, shard: Shard, measure: Measure, tag: str, log: Any
) -> FloorResult:
    """The same K sessions walled again (their attempt-2 pods), moved by the floor client
    instead of the operator (stopped by now), timed by the same recorder."""
    ready = WORK / f"floor-{shard.ns}.ready"
    ready.unlink(missing_ok=True)
    with (WORK / f"floor-{shard.ns}.log").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.floor", str(cluster.kubeconfig), shard.ns,
             str(ready)],
            cwd=str(REPO), stderr=err,
        )  # fmt: skip
    try:

        def floor_ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the floor client exited ({proc.returncode})")
            return ready.exists()

        wait_for("the floor client's watch", floor_ready, 60, 0.2)
        log(f"{tag} floor: walling the same {len(shard.walled)} sessions again")
        cpu_before = proc_usage(proc.pid).cpu_seconds
        measure.start()
        wall([shard], 2)

        def moved() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the floor client exited ({proc.returncode})")
            return shard.moved(3, check_operator=False)

        wait_for("the floor's replacements Running", moved, 120 + len(shard.walled) * 0.5, 0.5)
        time.sleep(2)  # the floor's last deletions
        window = measure.stop()
        cpu = proc_usage(proc.pid).cpu_seconds - cpu_before
    finally:
        proc.terminate()
        proc.wait(10)
    shard.timeline.update()
    return _floor_result(shard, window, cpu)


def _floor_result(shard: Shard, window: Window, cpu: float) -> FloorResult:
    t = shard.timeline
    to_created, to_running, problems = [], [], []
    first_end, last_running = math.inf, 0.0
    for s in shard.walled:
        ended, created = t.pod_terminated.get(f"{s}-2"), t.pod_added.get(f"{s}-3")
        running = t.session_running.get((s, 3))
        if ended is None or created is None or running is None:
            problems.append(f"floor {s}: incomplete timeline {ended=} {created=} {running=}")
            continue
        to_created.append(created - ended)
        to_running.append(running - ended)
        first_end, last_running = min(first_end, ended), max(last_running, running)
    for session, live in t.live_pods_by_session().items():
        if live > 1:
            problems.append(f"floor {session}: {live} live pods")
    return FloorResult(to_created, to_running, last_running - first_end, cpu, window, problems)


def _result(
    shard: Shard,
    cap: int,
    setup_seconds: float,
    settle_seconds: float,
    idle: Window,
    failover: Window,
) -> RunResult:
    """The operator's wave of one shard, from its recorder's timeline (taken before the
    floor's wave: the attempt-2 figures are final once every session moved)."""
    t = shard.timeline
    to_created, to_running, to_pod_running, problems = [], [], [], []
    onto_walled = 0
    first_end, last_running = math.inf, 0.0
    for s in shard.walled:
        ended = t.pod_terminated.get(f"{s}-1")
        created = t.pod_added.get(f"{s}-2")
        running = t.session_running.get((s, 2))
        pod_running = t.pod_running.get(f"{s}-2")
        if ended is None or created is None or running is None or pod_running is None:
            problems.append(f"{s}: incomplete timeline {ended=} {created=} {running=}")
            continue
        to_created.append(created - ended)
        to_running.append(running - ended)
        to_pod_running.append(pod_running - ended)
        first_end, last_running = min(first_end, ended), max(last_running, running)
        account = shard.operator_accounts[s]
        if account == shard.accounts_before[s]:
            problems.append(f"{s}: stayed on its walled account {account}")
        if shard.operator_pod_accounts[s] != account:
            problems.append(f"{s}: status says {account}, its pod says "
                            f"{shard.operator_pod_accounts[s]}")  # fmt: skip
        if account in shard.walled_accounts:
            onto_walled += 1
    problems += shard.operator_overruns
    return RunResult(
        n=shard.n,
        k=len(shard.walled),
        accounts=ACCOUNTS,
        max_sessions=cap,
        setup_seconds=setup_seconds,
        settle_seconds=settle_seconds,
        to_pod_created=to_created,
        to_session_running=to_running,
        to_pod_running=to_pod_running,
        failover_seconds=last_running - first_end,
        cpu_failover=0.0,
        cpu_total=0.0,
        rss_peak_mb=0.0,
        rss_idle_mb=0.0,
        idle=idle,
        failover=failover,
        problems=problems,
        onto_walled=onto_walled,
    )
