"""The time-aware upper bound: exact on worlds small enough to work out by hand, never beaten,
and a table that beats it is refused."""

from __future__ import annotations

import pytest
from tests.sim.worlds import account, session, world

from headroom_dev.sim import trace
from headroom_dev.sim.engine import Sim
from headroom_dev.sim.metrics import capacity_bound, collect, upper_bound, useful_and_waiting
from headroom_dev.sim.model import HOUR
from headroom_dev.sim.policies import HeadroomPolicy, LeastLoaded
from headroom_dev.sim.report import BoundBroken, check, simulate


def test_quota_that_comes_too_late_is_counted_as_waiting() -> None:
    # Two one-hour sessions at t=0, 1 token/s each; one 3600-token five-hour window, 6 h of
    # horizon. Over the horizon the pool has two windows' worth, the demand exactly: the
    # time-blind bound says 1. But by 1 h the sessions wanted 7200 tokens and no more than one
    # window (3600) can have been spent by then: 3600 tokens of appetite x time waited, at
    # least, so the bound is 7200 / (7200 + 3600).
    scenario = world(
        [account("a", 3600.0, slots=2)],
        [session("s1", 0.0, 3600.0), session("s2", 0.0, 3600.0)],
        horizon_s=6 * HOUR,
    )
    assert capacity_bound(scenario) == 1.0
    useful, waiting = useful_and_waiting(scenario)
    assert useful == pytest.approx(7200.0)
    assert waiting == pytest.approx(3600.0)
    assert upper_bound(scenario) == pytest.approx(2 / 3)
    result = collect(Sim(scenario, LeastLoaded()).run(), "least-loaded")
    assert result.productivity <= upper_bound(scenario)


def test_a_window_that_resets_in_time_leaves_the_bound_at_one() -> None:
    # The same demand spread out: the second session arrives after the first window reset.
    scenario = world(
        [account("a", 3600.0, slots=2)],
        [session("s1", 0.0, 3600.0), session("s2", 5 * HOUR, 3600.0)],
        horizon_s=7 * HOUR,
    )
    assert upper_bound(scenario) == 1.0


def test_no_policy_beats_the_time_aware_bound_on_a_busy_trace() -> None:
    scenario = trace.scenario(5, days=0.75, per_day=300.0)
    bound = upper_bound(scenario)
    assert bound < capacity_bound(scenario)  # it bites, and harder than the old one
    results = simulate(scenario)  # raises if any policy beats it
    assert max(r.productivity for r in results) <= bound


def test_the_simulator_refuses_a_table_where_a_policy_beats_the_bound() -> None:
    scenario = world([account("a", 1e9)], [session("s", 0.0, 3600.0)], horizon_s=2 * HOUR)
    # Productivity here is 3600/3601; a bound below it means the simulator or the bound is
    # wrong, and no table may be printed.
    with pytest.raises(BoundBroken, match="least-loaded beat the upper bound"):
        simulate(scenario, [LeastLoaded(), HeadroomPolicy()], bound=0.9)
    result = collect(Sim(scenario, LeastLoaded()).run(), "least-loaded")
    assert check(result, upper_bound(scenario)) is result
