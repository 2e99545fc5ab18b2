"""Tables for the failover benchmark: printed, and written to results/bench/latest.md."""

from __future__ import annotations

import os
import platform
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.cluster import RequestKey
from tests.bench.failover import RunResult

# nearest rank: an observed value, never interpolated
from headroom_dev.sim.metrics import percentile

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results" / "bench"

# Who issues which requests, for reading the breakdown (from the audit log, by user agent).
TARGETS = """\
Targets: walled pod terminated -> replacement pod created, p99 <= 2 s at
N=1,000 over 50 accounts with 250 walled at once; operator RSS <= 200 MB at 1,000 sessions;
idle API traffic must not grow with the number of sessions."""


def _lat(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, q):.2f}" for q in (50, 99, 100))


def summary_table(results: list[RunResult]) -> str:
    head = (
        "| N | K | pod ended → new pod created, s (p50 / p99 / max) "
        "| → session Running, s (p50 / p99 / max) | operator CPU s (failover / total) "
        "| peak RSS MB | API requests / failover (all / operator) "
        "| idle API requests / min (all / operator) |"
    )
    rows = [head, "|" + "---|" * 8]
    for r in results:
        per_all = r.failover.total / r.k
        per_op = r.failover.by_client["operator"] / r.k
        idle_all = r.idle.total / r.idle.seconds * 60
        idle_op = r.idle.by_client["operator"] / r.idle.seconds * 60
        rows.append(
            f"| {r.n} | {r.k} | {_lat(r.to_pod_created)} | {_lat(r.to_session_running)} "
            f"| {r.cpu_failover:.1f} / {r.cpu_total:.1f} | {r.rss_peak_mb:.0f} "
            f"| {per_all:.1f} / {per_op:.1f} | {idle_all:.0f} / {idle_op:.1f} |"
        )
    return "\n".join(rows)


def _keyname(key: RequestKey) -> str:
    verb, group, resource, sub = key
    res = f"{resource}/{sub}" if sub else resource
    return f"{verb} {group + '/' if group else ''}{res}"


def breakdown(r: RunResult) -> str:
    lines = [
        f"#### N={r.n}: requests per failover (K={r.k}), by verb and resource",
        "",
        "| request | all clients (apiserver_request_total) | operator (audit log) |",
        "|---|---|---|",
    ]
    op_by_name: Counter[str] = Counter()
    for key, count in r.failover.operator_by_key.items():
        op_by_name[_keyname(key)] += count
    all_by_name: Counter[str] = Counter()
    for key, count in r.failover.by_key.items():
        all_by_name[_keyname(key)] += count
    for name in sorted(set(all_by_name) | set(op_by_name), key=lambda x: -all_by_name[x]):
        if max(all_by_name[name], op_by_name[name]) / r.k < 0.005:
            continue  # e.g. a control-plane component's watch restarting
        lines.append(f"| {name} | {all_by_name[name] / r.k:.2f} | {op_by_name[name] / r.k:.2f} |")
    clients = ", ".join(
        f"{who} {count / r.k:.2f}" for who, count in r.failover.by_client.most_common()
    )
    idle = ", ".join(
        f"{who} {count / r.idle.seconds * 60:.1f}" for who, count in r.idle.by_client.most_common()
    )
    idle_operator = ", ".join(
        f"{_keyname(key)} {count / r.idle.seconds * 60:.1f}"
        for key, count in r.idle.operator_by_key.most_common()
    )
    lines += [
        "",
        f"Per failover by client (audit log): {clients}.",
        f"Idle requests/min by client over {r.idle.seconds:.0f}s (audit log): {idle}; "
        f"the operator's: {idle_operator or 'none'}.",
        f"Setup (create {r.n} sessions until all pods Running): {r.setup_seconds:.0f}s, "
        f"then {r.settle_seconds:.0f}s until the operator was quiet; "
        f"whole failover wave (first walled pod ended → last session Running): "
        f"{r.failover_seconds:.2f}s; pod ended → replacement pod Running on its kwok node "
        f"(scheduler + kwok, not the operator): {_lat(r.to_pod_running)} s (p50 / p99 / max); "
        f"operator RSS when idle {r.rss_idle_mb:.0f} MB; maxSessions per account "
        f"{r.max_sessions}; sessions placed on an account whose wall (same wave) the operator "
        f"had not processed yet: {r.onto_walled}.",
    ]
    if r.problems:
        lines.append(f"PROBLEMS: {'; '.join(r.problems[:10])}")
    return "\n".join(lines)


def environment() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
    except OSError:
        commit = "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, {os.cpu_count()} CPUs, "
        f"load average at the end {load}, Python {platform.python_version()}"
    )


def write_latest(results: list[RunResult], note: str = "") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "latest.md"
    parts = [
        "# Failover benchmark: latest run",
        "",
        f"`make bench` on {environment()}. One run per row. {note}".rstrip(),
        "",
        summary_table(results),
        "",
        TARGETS,
        "",
        *[breakdown(r) + "\n" for r in results],
    ]
    path.write_text("\n".join(parts))
    return path
