"""The engine: quota is conserved, walls come when windows run out, answers are exact on
scenarios small enough to work out by hand."""

from __future__ import annotations

import pytest
from tests.sim.worlds import account, session, world

from headroom_dev.sim import trace
from headroom_dev.sim.engine import Phase, Sim, SimError
from headroom_dev.sim.metrics import capacity, collect, upper_bound
from headroom_dev.sim.model import HOUR, Costs, clock
from headroom_dev.sim.policies import HeadroomPolicy, LeastLoaded, Pinned, all_policies


def test_one_session_walls_at_the_exact_moment_its_window_runs_out() -> None:
    # 1 token/s against a 3600-token window: walled after one hour of work, resumes at the
    # reset (five hours after first use), finishes the remaining 1800 tokens half an hour later.
    scenario = world([account("a", 3600.0)], [session("s", 0.0, 5400.0)])
    sim = Sim(scenario, Pinned(rescue=False)).run()
    run = sim.runs["s"]
    assert run.phase is Phase.DONE
    assert run.walls == 1 and run.swaps == 0
    # Pinned polls every 60 s: placed at 60 s, walled at 3660 s; the window (opened at 60 s)
    # resets at 18060 s, the next poll is 18060 s, a 1 s resume, then 1800 s of work.
    assert run.ended_at == pytest.approx(18060 + 1 + 1800)
    assert run.working_s == pytest.approx(5400.0)
    assert run.recoveries == [pytest.approx(18060 + 1 - 3660)]


def test_headroom_moves_a_walled_session_to_the_other_account() -> None:
    scenario = world([account("a", 3600.0), account("b", 3600.0)], [session("s", 0.0, 5400.0)])
    sim = Sim(scenario, HeadroomPolicy()).run()
    run = sim.runs["s"]
    assert run.phase is Phase.DONE and run.walls == 1 and run.swaps == 1
    # placed after the 1 s reaction, walled at 3601 s, moved 1 s later, 1 s re-read, 1800 s.
    assert run.ended_at == pytest.approx(1 + 3600 + 1 + 1 + 1800)
    assert run.recoveries == [pytest.approx(2.0)]
    assert sim.accounts["a"].windows[0].fills == [pytest.approx(1.0)]
    assert sim.accounts["b"].windows[0].fills == [pytest.approx(0.5)]


def test_resume_cost_is_charged_to_the_new_account_and_does_no_work() -> None:
    costs = Costs(
        start_s=10.0, resume_s=20.0, context_base=1000.0, context_share=0.5, context_cap=1e9
    )
    scenario = world(
        [account("a", 3600.0), account("b", 100_000.0)],
        [session("s", 0.0, 5400.0)],
        costs=costs,
    )
    sim = Sim(scenario, HeadroomPolicy()).run()
    run = sim.runs["s"]
    # Re-read on b: 1000 + 0.5 x 3600 tokens of work done on a.
    assert run.reread == pytest.approx(2800.0)
    assert sim.accounts["b"].spent == pytest.approx(2800.0 + 1800.0)
    assert run.work_done == pytest.approx(5400.0)
    assert run.ended_at == pytest.approx(1 + 10 + 3600 + 1 + 10 + 20 + 1800)


@pytest.mark.parametrize("seed", [1, 2])
def test_no_window_ever_hands_out_more_than_its_budget(seed: int) -> None:
    scenario = trace.scenario(seed, days=1, per_day=200)
    for policy in all_policies():
        sim = Sim(scenario, policy).run()
        for acc in sim.accounts.values():
            for w in acc.windows:
                assert max([w.fill(), *w.fills]) <= 1 + 1e-9, (policy.key, acc.spec.name)
        # and every token spent was spent by a session: work plus re-reads
        spent = sum(a.spent for a in sim.accounts.values())
        used = sum(r.work_done + r.reread for r in sim.runs.values())
        assert spent == pytest.approx(used, rel=1e-9)
        # the pool was really the limit: some windows were filled to the brim
        assert collect(sim, policy.key).max_fill == pytest.approx(1.0)


def test_the_upper_bound_is_reached_when_nothing_can_be_improved() -> None:
    # One session, an account that never runs out: productivity is exactly 1 and so is the bound.
    scenario = world([account("a", 1e9)], [session("s", 0.0, 3600.0)], horizon_s=2 * HOUR)
    result = collect(Sim(scenario, LeastLoaded()).run(), "least-loaded")
    assert upper_bound(scenario) == 1.0
    # placed after the 1 s reaction: 1 s of the 3601 s of session time is waiting
    assert result.productivity == pytest.approx(3600 / 3601)


def test_capacity_counts_windows_from_first_use_and_a_window_already_under_way() -> None:
    scenario = world([account("a", 100.0)], [], horizon_s=11 * HOUR)
    assert capacity(scenario) == 3 * 100.0  # windows can start at 0, 5 h and 10 h
    weekly = trace.accounts(__import__("random").Random(7))[0].windows[1]
    assert weekly.started0 is not None and weekly.used0 > 0


def test_same_seed_same_numbers_different_seed_different_trace() -> None:
    def numbers(seed: int) -> list[tuple[float, int, int]]:
        scenario = trace.scenario(seed, days=0.5, per_day=160)
        return [
            (r.productivity, r.swaps, r.walls)
            for r in (collect(Sim(scenario, p).run(), p.key) for p in all_policies())
        ]

    assert numbers(11) == numbers(11)
    assert trace.scenario(11) == trace.scenario(11)
    assert trace.scenario(11).sessions != trace.scenario(12).sessions


def test_a_policy_cannot_exceed_max_sessions() -> None:
    scenario = world([account("a", 1e9, slots=1)], [session("s1", 0, 10), session("s2", 0, 10)])
    sim = Sim(scenario, LeastLoaded())
    sim.policy.bind(sim)
    sim.now = 0.0
    for run in sim.runs.values():
        run.phase = Phase.BLOCKED
    sim.start(sim.runs["s1"], "a")
    with pytest.raises(SimError, match="maxSessions"):
        sim.start(sim.runs["s2"], "a")


def test_throttles_hit_at_the_same_work_under_every_policy() -> None:
    scenario = world(
        [account("a", 1e9), account("b", 1e9)],
        [session("s", 0.0, 3600.0, throttles=(1000.0, 2000.0))],
    )
    for policy in all_policies():
        run = Sim(scenario, policy).run().runs["s"]
        assert run.throttled == 2 and run.phase is Phase.DONE, policy.key


def test_clock_is_the_simulated_epoch() -> None:
    assert clock(3600.0).isoformat() == "2026-01-05T01:00:00+00:00"
