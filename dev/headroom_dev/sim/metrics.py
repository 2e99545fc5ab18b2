"""What a run produced, and the bound no policy can beat on the same trace.

Productivity is the share of session-time spent working, each session weighted by its
appetite: sum(appetite x working time) / sum(appetite x session time). Session time runs from
arrival to completion (or to the horizon, for sessions unfinished or given up). Weighting by
appetite makes the bound provable: the numerator is the useful tokens U, and the denominator
is at least the demand D the horizon admits, whatever the policy does. So productivity
<= U_max / D, where U_max bounds the useful tokens any policy can get.

The time-aware U_max (`useful_bound`): cut the horizon into intervals; in each, useful work
is at most what the sessions present could do in it, and at most what the windows can hand
out in it (a range of time meets a bounded number of a window's instances, each at most its
budget), and by any moment at most what the sessions wanted by then. That is a linear
programme over a grid of cut points, every constraint a sum over a range of intervals, and
filling each interval as early as the constraints allow solves it (`_fill_earliest`). It gives
the most work any policy can have done by each cut, Done(t).

Quota that comes too late also costs time, and that is most of the loss: a session that waits
adds appetite x waiting to the denominator. By any moment t, the sessions wanted W(t) tokens
of work and at most Done(t) were done; the difference is work that waited, so the appetite-
weighted waiting is at least max_t (W(t) - Done(t)). The denominator is then at least
max(D, U + that waiting), and productivity <= U_max / max(D, U_max + min waiting).
The whole horizon as one range is the old min(1, capacity / demand); the bound can only be
tighter than it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from headroom.core.models import MODEL_SCOPED_WINDOWS
from headroom_dev.sim.engine import Phase, Sim
from headroom_dev.sim.model import HOUR, AccountSpec, Scenario, WindowSpec

Floats = NDArray[np.float64]
CUT_STEP_S = HOUR / 4  # the grid of cut points the bound's partition may use


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


def capacity(scenario: Scenario) -> float:
    """Most tokens the pool can hand out before the horizon: every token is charged to every
    shared window of its account, and to its model's window, so per account the tightest
    shared window bounds it, and so does the sum of its models' windows."""
    models = sorted({s.model for s in scenario.sessions})
    h = np.array([scenario.horizon_s])
    total = 0.0
    for account in scenario.accounts:
        shared, per_model = _account_caps(account, models, 0.0, h)
        total += float(_all_models(shared, per_model)[0])
    return total


def capacity_bound(scenario: Scenario) -> float:
    """The time-blind bound: min(1, capacity / demand)."""
    return min(1.0, capacity(scenario) / admitted_demand(scenario))


def upper_bound(scenario: Scenario) -> float:
    """The time-aware bound on productivity (module doc)."""
    demand = admitted_demand(scenario)
    if demand <= 0:
        return 1.0
    useful, waiting = useful_and_waiting(scenario)
    return min(1.0, useful / max(demand, useful + waiting))


def instances_met(spec: WindowSpec, s: float, e: Floats) -> Floats:
    """At most how many instances of the window hand out tokens in [s, e) (per end e): the one
    under way (if it has not reset by s), and later ones, which start no sooner than its reset
    (or 0) and at least `length` apart; a calendar window's start exactly `length` apart."""
    length = spec.length_s
    first = 0.0 if spec.started0 is None else spec.started0 + length
    if spec.anchored and spec.started0 is not None:
        # instances [first + k L, first + (k + 1) L) for k >= 0 that meet [s, e)
        lo = max(0.0, math.floor((s - first) / length))
        hi = np.maximum(0.0, np.ceil((e - first) / length))
        later = np.maximum(0.0, hi - lo)
    else:
        later = np.maximum(0.0, np.ceil((e - max(first, s - length)) / length))
    return later


def window_cap(spec: WindowSpec, s: float, e: Floats) -> Floats:
    under = (
        max(0.0, spec.budget - spec.used0)
        if spec.started0 is not None and s < (spec.started0 + spec.length_s)
        else 0.0
    )
    return under + instances_met(spec, s, e) * spec.budget


def _account_caps(
    account: AccountSpec, models: list[str], s: float, e: Floats
) -> tuple[Floats, dict[str, Floats]]:
    """Tokens the account can hand out in [s, e): all models together (its shared windows),
    and each model (its own window as well)."""
    shared = np.full(e.shape, np.inf)
    for w in account.windows:
        if w.name not in MODEL_SCOPED_WINDOWS:
            shared = np.minimum(shared, window_cap(w, s, e))
    per_model: dict[str, Floats] = {}
    for model in models:
        cap = shared.copy()
        for w in account.windows:
            if w.name in MODEL_SCOPED_WINDOWS and w.applies_to(model):
                cap = np.minimum(cap, window_cap(w, s, e))
        per_model[model] = cap
    return shared, per_model


def _all_models(shared: Floats, per_model: dict[str, Floats]) -> Floats:
    """What an account hands out to sessions of every model together: its shared windows,
    and at most the sum of its models' own windows."""
    if not per_model:
        return shared
    return np.minimum(shared, sum(per_model.values(), np.zeros(shared.shape)))


def useful_bound(scenario: Scenario, step_s: float = CUT_STEP_S) -> float:
    """The most useful tokens any policy can get before the horizon (module doc)."""
    return useful_and_waiting(scenario, step_s)[0]


def useful_and_waiting(scenario: Scenario, step_s: float = CUT_STEP_S) -> tuple[float, float]:
    """The most useful tokens any policy can get before the horizon, and the least waiting
    (appetite x time not working) it must cause (module doc)."""
    h = scenario.horizon_s
    cuts = np.unique(np.append(np.arange(0.0, h, step_s), h))
    sessions = scenario.sessions
    models = sorted({s.model for s in sessions})
    arrival = np.array([s.arrival_s for s in sessions])
    appetite = np.array([s.appetite for s in sessions])
    work = np.array([s.work for s in sessions])
    # could[j, i]: what session i could work in the j-th interval, from its arrival on
    span = np.clip(
        np.minimum(cuts[1:, None], h) - np.maximum(cuts[:-1, None], arrival[None, :]), 0.0, None
    )
    could = np.minimum(work[None, :], appetite[None, :] * span)
    n = len(cuts) - 1
    # caps[model][a, b]: tokens the pool can hand out in [cut a, cut b) to sessions of model
    # (None: of any model, through the shared windows only)
    caps: dict[str | None, Floats] = {m: np.zeros((n, n + 1)) for m in [None, *models]}
    for a in range(n):
        ends = cuts[a + 1 :]
        for account in scenario.accounts:
            shared, per_model = _account_caps(account, models, float(cuts[a]), ends)
            caps[None][a, a + 1 :] += _all_models(shared, per_model)
            for m in models:
                caps[m][a, a + 1 :] += per_model[m]
    of_model = {m: np.array([s.model == m for s in sessions]) for m in models}
    # wanted[c, i]: what session i would have done by cut c if nothing ever stopped it; no
    # policy has it do more by then (a session delayed works later, never sooner)
    wanted = np.minimum(
        work[None, :], appetite[None, :] * np.clip(cuts[:, None] - arrival[None, :], 0.0, None)
    )
    every = _fill_earliest(could.sum(axis=1), wanted.sum(axis=1), caps[None])
    each = sum(
        (
            _fill_earliest(
                could[:, of_model[m]].sum(axis=1), wanted[:, of_model[m]].sum(axis=1), caps[m]
            )
            for m in models
        ),
        np.zeros(n + 1),
    )
    done = np.minimum(every, each)  # the most useful work any policy has done by each cut
    return float(done[-1]), float(max(0.0, np.max(wanted.sum(axis=1) - done)))


def _fill_earliest(rate: Floats, wanted: Floats, cap: Floats) -> Floats:
    """The most work done by each cut (prefix sums of u), where u[j] <= rate[j] (what the
    sessions present can do in interval j), sum(u[:c]) <= wanted[c] (what they want by cut c)
    and sum(u[a:b]) <= cap[a, b] for every range of intervals. Filling each interval as fully
    as the constraints ending there allow is optimal for every prefix at once (an exchange
    argument: moving work earlier never tightens a range that starts later)."""
    n = len(rate)
    used = np.zeros(n + 1)
    for j in range(n):
        room = min(
            float(np.min(cap[: j + 1, j + 1] - (used[j] - used[: j + 1]))),
            float(rate[j]),
            float(wanted[j + 1] - used[j]),
        )
        used[j + 1] = used[j] + max(0.0, room)
    return used


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
