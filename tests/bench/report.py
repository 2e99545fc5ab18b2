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
Targets (issue 13): walled pod terminated -> replacement pod created, p99 <= 2 s and <= 2x the
floor at N=1,000 over 50 accounts with 250 walled at once (<= 10 s and <= 2x the floor at
N=5,000, K=1,250); operator API requests per failover <= 4; operator CPU per failover <= 8 ms;
operator peak RSS <= 150 MB at 1,000 and <= 300 MB at 5,000 sessions; 0 operator requests/min
when idle; cost per failover flat in N (results/bench/failover.png)."""


def _lat(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, q):.2f}" for q in (50, 99, 100))


def _ratio(operator: float, floor: float) -> str:
    return f"{operator / floor:.1f}x" if floor > 0 else "-"


def _size(r: RunResult) -> str:
    return f"{r.n} ({r.shard})" if r.shard else str(r.n)


def summary_table(results: list[RunResult]) -> str:
    head = (
        "| N | K | pod ended → new pod created, s (p50 / p99 / max) "
        "| floor, s (p50 / p99 / max) | operator ÷ floor (p50 / p99) "
        "| → session Running, s (p50 / p99 / max) | operator CPU s (failover / total) "
        "| operator CPU ms / failover | peak RSS MB "
        "| API requests / failover (all / operator / floor) | operator ÷ floor, requests "
        "| idle API requests / min (all / operator) |"
    )
    rows = [head, "|" + "---|" * 12]
    for r in results:
        per_all = r.failover.total / r.failovers_in_cluster
        per_op = r.operator_requests_per_failover
        idle_all = r.idle.total / r.idle.seconds * 60
        idle_op = r.operator_idle_per_minute
        floor_lat, ratios, per_floor, ratio_requests = "-", "-", "-", "-"
        if r.floor is not None and r.floor.to_pod_created:
            f = r.floor
            floor_lat = _lat(f.to_pod_created)
            ratios = " / ".join(
                _ratio(percentile(r.to_pod_created, q), percentile(f.to_pod_created, q))
                for q in (50, 99)
            )
            per_floor = f"{f.requests_per_failover(r.k):.1f}"
            ratio_requests = _ratio(per_op, f.requests_per_failover(r.k))
        rows.append(
            f"| {_size(r)} | {r.k} | {_lat(r.to_pod_created)} | {floor_lat} | {ratios} "
            f"| {_lat(r.to_session_running)} | {r.cpu_failover:.1f} / {r.cpu_total:.1f} "
            f"| {r.cpu_ms_per_failover:.1f} | {r.rss_peak_mb:.0f} "
            f"| {per_all:.1f} / {per_op:.1f} / {per_floor} | {ratio_requests} "
            f"| {idle_all:.0f} / {idle_op:.1f} |"
        )
    return "\n".join(rows)


def floor_line(r: RunResult) -> str:
    f = r.floor
    if f is None:
        return "No floor wave in this run (the floor runs only with one operator)."
    per = {
        _keyname(key): count / r.k
        for key, count in f.window.by_key.most_common()
        if count / r.k >= 0.005
    }
    requests = ", ".join(f"{name} {value:.2f}" for name, value in per.items())
    clients = ", ".join(
        f"{who} {count / r.k:.2f}" for who, count in f.window.by_client.most_common()
    )
    line = (
        f"Floor (tests/bench/floor.py, the operator stopped, the same {r.k} sessions walled "
        f"again): pod ended → new pod created {_lat(f.to_pod_created)} s, → session Running "
        f"{_lat(f.to_session_running)} s (p50 / p99 / max); wave {f.failover_seconds:.2f}s; "
        f"floor client CPU {f.cpu_seconds:.1f}s ({f.cpu_seconds / r.k * 1000:.1f} ms per "
        f"failover); requests per failover by client: {clients}; all clients by request: "
        f"{requests}."
    )
    if f.problems:
        line += f" FLOOR PROBLEMS: {'; '.join(f.problems[:10])}"
    return line


def _keyname(key: RequestKey) -> str:
    verb, group, resource, sub = key
    res = f"{resource}/{sub}" if sub else resource
    return f"{verb} {group + '/' if group else ''}{res}"


def breakdown(r: RunResult) -> str:
    lines = [
        f"#### N={_size(r)}: requests per failover (K={r.k}), by verb and resource",
        "",
        "| request | all clients (apiserver_request_total) | operator (audit log) |",
        "|---|---|---|",
    ]
    op_by_name: Counter[str] = Counter()
    for key, count in r.operator_requests(r.failover).items():
        op_by_name[_keyname(key)] += count
    all_by_name: Counter[str] = Counter()
    for key, count in r.failover.by_key.items():
        all_by_name[_keyname(key)] += count
    every = r.failovers_in_cluster  # the all-clients figures: every shard's failovers
    for name in sorted(set(all_by_name) | set(op_by_name), key=lambda x: -all_by_name[x]):
        if max(all_by_name[name] / every, op_by_name[name] / r.k) < 0.005:
            continue  # e.g. a control-plane component's watch restarting
        lines.append(f"| {name} | {all_by_name[name] / every:.2f} | {op_by_name[name] / r.k:.2f} |")
    clients = ", ".join(
        f"{who} {count / every:.2f}" for who, count in r.failover.by_client.most_common()
    )
    idle = ", ".join(
        f"{who} {count / r.idle.seconds * 60:.1f}" for who, count in r.idle.by_client.most_common()
    )
    idle_operator = ", ".join(
        f"{_keyname(key)} {count / r.idle.seconds * 60:.1f}"
        for key, count in r.operator_requests(r.idle).most_common()
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
    lines += ["", floor_line(r)]
    if r.shard:
        lines.append(
            f"Shard {r.shard} of {r.shards}: the operator column and the operator's idle "
            "requests are this shard's operator's requests on objects of its own namespace "
            "(the shards' operators share a user agent); the all-clients figures and the "
            f"requests by client are the whole cluster's, per failover of all {r.shards} "
            "shards."
        )
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


def _twos_and_fives(value: float, _: object) -> str:
    text = f"{value:g}"
    return text if text.lstrip("0.")[:1] in ("2", "3", "5") else ""


def plot(results: list[RunResult], path: Path) -> Path:
    """p99 to the new pod (operator and floor) and operator CPU per failover against N, the
    single-operator rows only (a shard row is not one operator's whole load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = sorted((r for r in results if not r.shard), key=lambda r: r.n)
    sizes = [r.n for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(sizes, [percentile(r.to_pod_created, 99) for r in rows], marker="o",
              label="operator")  # fmt: skip
    floors = [(r.n, percentile(r.floor.to_pod_created, 99)) for r in rows
              if r.floor is not None and r.floor.to_pod_created]  # fmt: skip
    left.plot([n for n, _ in floors], [v for _, v in floors], marker="s", label="floor")
    left.set_yscale("log")  # from under a second at N=100 to tens of seconds at N=5,000
    # Plain seconds (0.5, 2, 50, not 5x10^-1); between decades only the 2s, 3s and 5s.
    left.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    left.yaxis.set_minor_formatter(FuncFormatter(_twos_and_fives))
    left.set_xlabel("sessions N (K = N/4 walled at once)")
    left.set_ylabel("pod ended → new pod created, p99 (s, log scale)")
    left.set_title("failover latency, p99")
    right.plot(sizes, [r.cpu_ms_per_failover for r in rows], marker="o", color="#C44E52")
    right.set_ylim(bottom=0)
    right.set_xlabel("sessions N (K = N/4 walled at once)")
    right.set_ylabel("operator CPU ms per failover (wave CPU / K)")
    right.set_title("operator CPU per failover")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xticks(sizes, [str(n) for n in sizes])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(True, alpha=0.3)
    left.legend()
    fig.suptitle(f"make bench: {environment()}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


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
        "![p99 and CPU per failover against N](failover.png)",
        "",
        *[breakdown(r) + "\n" for r in results],
    ]
    path.write_text("\n".join(parts))
    if any(not r.shard for r in results):
        plot(results, RESULTS / "failover.png")
    return path
