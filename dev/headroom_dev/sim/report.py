"""Runs the comparison and writes what it found: a table (markdown, also printed), a JSON
file with every figure, and a chart."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from headroom_dev.sim import trace
from headroom_dev.sim.engine import Sim
from headroom_dev.sim.metrics import RunResult, collect, percentile, upper_bound
from headroom_dev.sim.model import Scenario
from headroom_dev.sim.policies import Policy, all_policies


@dataclass(frozen=True)
class Config:
    seed: int = 20260105
    runs: int = 8
    days: float = 2.0
    per_day: float = 140.0  # the reference load of the table (also a point of the sweep)
    sweep: tuple[float, ...] = (100.0, 120.0, 160.0, 180.0)  # sessions per day
    sweep_runs: int = 2
    throttles_per_hour: float = 0.1


@dataclass(frozen=True)
class Summary:
    policy: str
    title: str
    runs: int
    sessions: int
    productivity: float
    productivity_min: float
    productivity_max: float
    work_share: float
    completed_share: float
    swaps_per_session: float
    walls_per_session: float
    recovered: int
    unrecovered: int
    recovery_p50_s: float
    recovery_p99_s: float
    reread_share: float  # re-read tokens / all tokens spent


class BoundBroken(AssertionError):
    """A policy did better than no policy can: the simulator or the bound has a bug."""


def check(result: RunResult, bound: float) -> RunResult:
    if result.productivity > bound + 1e-9 or result.max_fill > 1 + 1e-9:
        raise BoundBroken(
            f"{result.policy} beat the upper bound {bound:.4f} or a window's budget: {result}"
        )
    return result


def simulate(
    scenario: Scenario, policies: list[Policy] | None = None, bound: float | None = None
) -> list[RunResult]:
    """Every policy on the same scenario. Checks the bound on every run: a simulator that
    beats the time-aware bound has a bug, and must not print a table."""
    limit = upper_bound(scenario) if bound is None else bound
    return [
        check(collect(Sim(scenario, policy).run(), policy.key), limit)
        for policy in (policies if policies is not None else all_policies())
    ]


def summarize(title: str, results: list[RunResult]) -> Summary:
    recoveries = [x for r in results for x in r.recoveries]
    sessions = sum(r.sessions for r in results)
    prods = [r.productivity for r in results]
    return Summary(
        policy=results[0].policy,
        title=title,
        runs=len(results),
        sessions=sessions,
        productivity=sum(prods) / len(prods),
        productivity_min=min(prods),
        productivity_max=max(prods),
        work_share=sum(r.work_share for r in results) / len(results),
        completed_share=sum(r.completed for r in results) / sessions,
        swaps_per_session=sum(r.swaps for r in results) / sessions,
        walls_per_session=sum(r.walls for r in results) / sessions,
        recovered=len(recoveries),
        unrecovered=sum(r.unrecovered for r in results),
        recovery_p50_s=percentile(recoveries, 50),
        recovery_p99_s=percentile(recoveries, 99),
        reread_share=sum(r.reread for r in results) / sum(r.useful + r.reread for r in results),
    )


def run_all(cfg: Config) -> tuple[list[Summary], list[float], dict[str, list[tuple[float, float]]]]:
    titles = {p.key: p.title for p in all_policies()}
    by_policy: dict[str, list[RunResult]] = {}
    bounds = []
    for i in range(cfg.runs):
        scenario = trace.scenario(cfg.seed + i, cfg.days, cfg.per_day, cfg.throttles_per_hour)
        bounds.append(upper_bound(scenario))
        for result in simulate(scenario, bound=bounds[-1]):
            by_policy.setdefault(result.policy, []).append(result)
    table = [summarize(titles[k], v) for k, v in by_policy.items()]
    sweep: dict[str, list[tuple[float, float]]] = {}
    for load in sorted({*cfg.sweep, cfg.per_day}):
        per: dict[str, list[float]] = {}
        if load == cfg.per_day:  # the table's own runs
            per["upper bound"] = bounds
            for key, results in by_policy.items():
                per[key] = [r.productivity for r in results]
        for i in range(cfg.sweep_runs if load != cfg.per_day else 0):
            scenario = trace.scenario(cfg.seed + i, cfg.days, load, cfg.throttles_per_hour)
            bound = upper_bound(scenario)
            per.setdefault("upper bound", []).append(bound)
            for result in simulate(scenario, bound=bound):
                per.setdefault(result.policy, []).append(result.productivity)
        for key, values in per.items():
            sweep.setdefault(key, []).append((load, sum(values) / len(values)))
    return table, bounds, sweep


def _minutes(value: float) -> str:
    return "-" if math.isnan(value) else f"{value / 60:.1f}"


def markdown(cfg: Config, table: list[Summary], bounds: list[float]) -> str:
    sessions = table[0].sessions
    lines = [
        f"Seed {cfg.seed}, {cfg.runs} runs (seeds {cfg.seed}..{cfg.seed + cfg.runs - 1}), "
        f"{cfg.days:g} days each, {cfg.per_day:g} sessions/day on average, "
        f"{sessions} sessions in all; every policy ran on the same {cfg.runs} traces.",
        "",
        "| policy | productivity (mean, min-max over runs) | work done | sessions completed "
        "| swaps / session | walls / session | wall -> working again p50 / p99 (min) "
        "| walls not recovered by the end | re-read share of tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in table:
        lines.append(
            f"| {s.title} | {s.productivity:.3f} ({s.productivity_min:.3f}-"
            f"{s.productivity_max:.3f}) | {s.work_share:.3f} | {s.completed_share:.3f} "
            f"| {s.swaps_per_session:.2f} | {s.walls_per_session:.2f} "
            f"| {_minutes(s.recovery_p50_s)} / {_minutes(s.recovery_p99_s)} "
            f"(n={s.recovered}) | {s.unrecovered} | {s.reread_share:.3f} |"
        )
    mean_bound = sum(bounds) / len(bounds)
    lines.append(
        f"| upper bound, time-aware (no policy can beat it) | {mean_bound:.3f} "
        f"({min(bounds):.3f}-{max(bounds):.3f}) | {mean_bound:.3f} | | | | | | |"
    )
    return "\n".join(lines) + "\n"


def chart(
    path: Path,
    cfg: Config,
    table: list[Summary],
    bounds: list[float],
    sweep: dict[str, list[tuple[float, float]]],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = [s.title for s in table]
    means = [s.productivity for s in table]
    errs = [
        [s.productivity - s.productivity_min for s in table],
        [s.productivity_max - s.productivity for s in table],
    ]
    left.barh(names, means, xerr=errs, color="#4C72B0", capsize=3)
    bound = sum(bounds) / len(bounds)
    left.axvline(bound, color="#C44E52", linestyle="--", label=f"upper bound {bound:.2f}")
    left.set_xlim(0, 1.05)
    left.invert_yaxis()
    left.set_xlabel("productivity (appetite-weighted share of session time working)")
    left.set_title(f"{cfg.per_day:g} sessions/day, {cfg.runs} runs (min-max bars)")
    left.legend(loc="lower right")
    titles = {s.policy: s.title for s in table}
    for key, points in sweep.items():
        style = {"color": "#C44E52", "linestyle": "--"} if key == "upper bound" else {}
        right.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="o",
            label=titles.get(key, key),
            **style,
        )
    right.set_ylim(0, 1.05)
    right.set_xlabel("sessions arriving per day")
    right.set_ylabel("productivity (mean)")
    right.set_title(
        f"load sweep: {cfg.sweep_runs} runs per point ({cfg.runs} at {cfg.per_day:g}/day)"
    )
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def write(
    out: Path,
    cfg: Config,
    table: list[Summary],
    bounds: list[float],
    sweep: dict[str, list[tuple[float, float]]],
) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(cfg, table, bounds)
    (out / "table.md").write_text(text, encoding="utf-8")
    doc = {
        "config": {**cfg.__dict__, "sweep": list(cfg.sweep)},
        "upper_bound_per_run": bounds,
        "policies": [s.__dict__ for s in table],
        "sweep": {k: [list(p) for p in v] for k, v in sweep.items()},
    }
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    chart(out / "productivity.png", cfg, table, bounds, sweep)
    return text
