"""The quota signals of today's plans in the simulated world: per-model weekly windows,
monthly usage credits, early warnings from running attempts, live usage, and the
drain-soonest baseline that reads it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from tests.sim.worlds import account, session, world

from headroom.core.accounts import Account, Window
from headroom_dev.sim.engine import Phase, Sim
from headroom_dev.sim.model import DAY, HOUR, AccountSpec, WindowSpec, clock
from headroom_dev.sim.policies import (
    DrainSoonest,
    HeadroomLive,
    HeadroomPolicy,
    LeastLoaded,
    seen_by,
)


def opus_limited(name: str, opus_budget: float) -> AccountSpec:
    return AccountSpec(
        name,
        (
            WindowSpec("five_hour", 5 * HOUR, 1e9),
            WindowSpec("seven_day_opus", 7 * DAY, opus_budget, model="opus"),
        ),
        max_sessions=2,
    )


@pytest.mark.parametrize("policy", [HeadroomPolicy, LeastLoaded])
def test_a_spent_opus_window_stops_opus_sessions_only(policy: Any) -> None:
    # One account with 1000 opus tokens left for the week: the opus session walls there after
    # 1000 tokens, the sonnet session beside it goes on and finishes.
    scenario = world(
        [opus_limited("a", 1000.0)],
        [
            session("opus", 0.0, 3000.0, model="opus"),
            session("sonnet", 0.0, 3000.0, model="sonnet"),
        ],
        horizon_s=2 * HOUR,
    )
    sim = Sim(scenario, policy()).run()
    assert sim.runs["sonnet"].phase is Phase.DONE and sim.runs["sonnet"].walls == 0
    opus = sim.runs["opus"]
    assert opus.walls == 1 and opus.work_done == pytest.approx(1000.0)
    assert sim.accounts["a"].windows[1].used == pytest.approx(1000.0)  # sonnet never drew on it
    # and a sonnet session arriving after the opus wall is still placed there
    later = world(
        [opus_limited("a", 1000.0)],
        [session("opus", 0.0, 3000.0, model="opus"), session("late", 3000.0, 100.0)],
        horizon_s=2 * HOUR,
    )
    assert Sim(later, policy()).run().runs["late"].phase is Phase.DONE


def test_headroom_sees_a_per_model_wall_only_for_that_model() -> None:
    now = clock(0.0)
    walled = Account(
        "sim",
        "a",
        credentials_hash="h",
        windows=(Window("seven_day_opus", "rejected", 1.0, resets_at=clock(DAY)),),
    )
    assert seen_by(walled, "opus", now).walled_until == clock(DAY)
    assert seen_by(walled, "sonnet", now).walled_until is None
    assert seen_by(walled, "sonnet", now).windows == ()


def test_spent_usage_credits_wall_until_the_monthly_refresh_and_then_resume() -> None:
    # The month's credit refreshes 2 h into the trace; 100 of its 900 tokens are left.
    credits = WindowSpec(
        "credits", 30 * DAY, 900.0, used0=800.0, started0=-30 * DAY + 2 * HOUR, anchored=True
    )
    spec = AccountSpec("a", (WindowSpec("five_hour", 5 * HOUR, 1e9), credits), max_sessions=1)
    scenario = world([spec], [session("s", 0.0, 300.0)], horizon_s=4 * HOUR)
    ends: list[Any] = []

    class Recording(HeadroomPolicy):
        def ended(self, run: Any, end: Any) -> None:
            ends.append(end)
            super().ended(run, end)

    sim = Sim(scenario, Recording()).run()
    run = sim.runs["s"]
    # placed at 1 s, walled after 100 tokens of work at 101 s until the refresh (2 h); Waiting
    # wakes at that reset and places it again, a 1 s re-read, the last 200 tokens.
    assert run.walls == 1 and run.phase is Phase.DONE
    assert (ends[0].window, ends[0].evidence) == ("credits", "You're out of usage credits")
    assert ends[0].resets_at == clock(2 * HOUR)
    assert run.ended_at == pytest.approx(2 * HOUR + 1 + 200.0)
    window = sim.accounts["a"].windows[1]
    assert window.resets_at == pytest.approx(2 * HOUR + 30 * DAY)
    assert window.fills == [pytest.approx(1.0)]


def test_a_running_attempt_reports_the_warning_threshold_once() -> None:
    reports: list[tuple[float, str, tuple[Window, ...]]] = []

    class Listening(HeadroomPolicy):
        def reported(self, account: str, windows: tuple[Window, ...]) -> None:
            reports.append((self.world.now, account, windows))
            super().reported(account, windows)

    scenario = world([account("a", 1000.0)], [session("s", 0.0, 900.0)], horizon_s=HOUR)
    policy = Listening()
    Sim(scenario, policy).run()
    assert [(t, a) for t, a, _ in reports] == [(pytest.approx(1 + 800.0), "a")]
    (five,) = reports[0][2]
    assert five.status == "allowed_warning" and five.utilization == pytest.approx(0.8)
    # what the operator now holds in status.windows
    # the attempt's end (at 90 %) says so too, in what the operator keeps in status.windows
    assert policy.roster["a"].windows[0].status == "allowed_warning"


def test_live_usage_is_read_at_most_once_a_minute_and_placement_sees_it() -> None:
    polls: list[float] = []

    class Counting(HeadroomLive):
        def observed(self, account: str, windows: tuple[Window, ...]) -> None:
            if account == "a":
                polls.append(self.world.now)
            super().observed(account, windows)

    # a session arriving every 10 s: a placement every 10 s, a usage read every 60 s at most
    arrivals = [session(f"s{i:02d}", 10.0 * i, 30.0) for i in range(30)]
    scenario = world([account("a", 1e6, slots=30), account("b", 1e6, slots=30)], arrivals, 400.0)
    policy = Counting()
    Sim(scenario, policy).run()
    assert polls[0] == pytest.approx(1.0)  # the first placement
    assert all(b - a >= 60.0 for a, b in itertools.pairwise(polls))
    assert 5 <= len(polls) <= 7
    # what the roster holds is the true usage as of the last read
    (five,) = policy.roster["a"].windows
    assert five.observed_at is not None and five.utilization > 0


def test_drain_soonest_prefers_the_account_whose_window_resets_first() -> None:
    # s1 opens "a"'s window at 1 s (a tie on load goes by name). When s2 arrives, "a" holds a
    # session and "z" none: least-loaded picks "z", drain-soonest "a", whose window (known from
    # the usage poll at 60 s) resets first.
    scenario = world(
        [account("a", 1e9, slots=3), account("z", 1e9, slots=3)],
        [session("s1", 0.0, 7200.0), session("s2", 100.0, 600.0)],
        horizon_s=3 * HOUR,
    )
    assert Sim(scenario, DrainSoonest()).run().runs["s2"].account == "a"
    assert Sim(scenario, LeastLoaded()).run().runs["s2"].account == "z"
