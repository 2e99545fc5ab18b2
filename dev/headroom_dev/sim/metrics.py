"""What a run produced, and the bound no policy can beat on the same trace.

Productivity is the share of session-time spent working, each session weighted by its
appetite: sum(appetite x working time) / sum(appetite x session time). Session time runs from
arrival to completion (or to the horizon, for sessions unfinished or given up). Weighting by
appetite makes the bound provable: the numerator is the useful tokens, which no policy can
make exceed the pool's quota capacity, and the denominator is at least the demand the horizon
admits, whatever the policy does. So productivity <= min(1, capacity / demand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from headroom_dev.sim.engine import Phase, Sim
from headroom_dev.sim.model import Scenario, WindowSpec


@dataclass(frozen=True)
class RunResult:
    policy: str
    sessions: int
    productivity: float
    time_share: float  # unweighted share of session time spent working (not bounded)
    work_share: float  # useful tokens / demand the horizon admits
    completed: int
    failed: int
    swaps: int
    walls: int
    throttles: int
    recoveries: tuple[float, ...]  # seconds from a wall to working again
    unrecovered: int  # walls still not working again at the horizon
    useful: float
    reread: float  # tokens spent re-reading conversations on resume
    max_fill: float  # the fullest any window instance ever got (used / budget)


def collect(sim: Sim, policy: str) -> RunResult:
    horizon = sim.horizon
    weighted_work = weighted_time = work_s = session_s = 0.0
    unrecovered = 0
    for run in sim.runs.values():
        spec = run.spec
        end = run.ended_at if run.ended_at is not None else horizon
        span = max(0.0, end - spec.arrival_s)
        weighted_work += spec.appetite * run.working_s
        weighted_time += spec.appetite * span
        work_s += run.working_s
        session_s += span
        if run.walled_at is not None and run.phase is not Phase.DONE:
            unrecovered += 1
    fills = [max([w.fill(), *w.fills]) for acc in sim.accounts.values() for w in acc.windows]
    runs = list(sim.runs.values())
    return RunResult(
        policy=policy,
        sessions=len(runs),
        productivity=weighted_work / weighted_time if weighted_time else 1.0,
        time_share=work_s / session_s if session_s else 1.0,
        work_share=sum(r.work_done for r in runs) / admitted_demand(sim.scenario),
        completed=sum(r.phase is Phase.DONE for r in runs),
        failed=sum(r.phase is Phase.FAILED for r in runs),
        swaps=sum(r.swaps for r in runs),
        walls=sum(r.walls for r in runs),
        throttles=sum(r.throttled for r in runs),
        recoveries=tuple(x for r in runs for x in r.recoveries),
        unrecovered=unrecovered,
        useful=sum(r.work_done for r in runs),
        reread=sum(r.reread for r in runs),
        max_fill=max(fills, default=0.0),
    )


def admitted_demand(scenario: Scenario) -> float:
    """Tokens of work the sessions could do before the horizon if nothing ever stopped them."""
    h = scenario.horizon_s
    return sum(min(s.work, s.appetite * max(0.0, h - s.arrival_s)) for s in scenario.sessions)


def window_capacity(spec: WindowSpec, horizon_s: float) -> float:
    """Most tokens one window can hand out before the horizon. A window starts at first use
    and lasts `length_s`, so new instances start at least `length_s` apart."""
    if spec.started0 is None:
        return math.ceil(horizon_s / spec.length_s) * spec.budget
    first_reset = spec.started0 + spec.length_s
    later = math.ceil(max(0.0, horizon_s - first_reset) / spec.length_s)
    return max(0.0, spec.budget - spec.used0) + later * spec.budget


def capacity(scenario: Scenario) -> float:
    """Every token is charged to every window of its account, so the tightest window bounds
    the account."""
    return sum(
        min(window_capacity(w, scenario.horizon_s) for w in a.windows) for a in scenario.accounts
    )


def upper_bound(scenario: Scenario) -> float:
    return min(1.0, capacity(scenario) / admitted_demand(scenario))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
