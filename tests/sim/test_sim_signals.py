"""The quota signals of today's plans in the simulated world: per-model weekly windows,
monthly usage credits, early warnings from running attempts, live usage, and the
drain-soonest baseline that reads it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from tests.sim.worlds import account, session, world

from headroom.core import placement
from headroom.core.accounts import Account
from headroom.core.outcome import AttemptEnd
from headroom.core.usage import ReportedWindow
from headroom_dev.sim.engine import Phase, Sim
from headroom_dev.sim.model import DAY, HOUR, AccountSpec, WindowSpec, clock
from headroom_dev.sim.policies import (
    DrainSoonest,
    HeadroomLive,
    HeadroomPolicy,
    LeastLoaded,
)


def opus_limited(name: str, opus_budget: float) -> AccountSpec:
    return AccountSpec(
        name,
        (
            WindowSpec("five_hour", 5 * HOUR, 1e9),
            WindowSpec("seven_day_opus", 7 * DAY, opus_budget),
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


class Placing(HeadroomPolicy):
    """Headroom's policy, recording every call it makes to the real place()."""

    def bind(self, sim: Sim) -> None:
        super().bind(sim)
        self.calls: list[tuple[placement.Request, dict[str, Account], str]] = []
        real = placement.place

        def recorded(accounts: Any, load: Any, request: Any, now: Any) -> Any:
            choice = real(accounts, load, request, now)
            answer = choice.account if isinstance(choice, placement.Placed) else ""
            self.calls.append((request, {a.name: a for a in accounts}, answer))
            return choice

        self._place = recorded

    def choose(self, run: Any) -> Any:
        real, placement.place = placement.place, self._place  # type: ignore[assignment]
        try:
            return super().choose(run)
        finally:
            placement.place = real


def test_an_opus_walled_account_takes_a_sonnet_session_through_place() -> None:
    # "a" walls on seven_day_opus at 1001 s and is the only account: the opus session waits
    # for the weekly reset. The sonnet session arriving later is placed by the real place(),
    # given its model, on "a", whose status holds the opus wall as the operator records it.
    scenario = world(
        [opus_limited("a", 1000.0)],
        [session("opus", 0.0, 3000.0, model="opus"), session("sonnet", 3000.0, 100.0)],
        horizon_s=2 * HOUR,
    )
    policy = Placing()
    sim = Sim(scenario, policy).run()
    assert sim.runs["opus"].walls == 1 and sim.runs["opus"].phase is not Phase.DONE
    assert sim.runs["sonnet"].account == "a" and sim.runs["sonnet"].phase is Phase.DONE
    _, roster, answer = next(c for c in policy.calls if c[0].model == "sonnet")
    assert answer == "a"
    wall = next(w for w in roster["a"].windows if w.name == "seven_day_opus")
    assert wall.status == "rejected" and wall.resets_at is not None
    assert roster["a"].walled_until is None  # the account itself is not walled
    # and place() itself refuses "a" for an opus session then
    opus = placement.Request(selector=None, model="opus")
    choice = placement.place([roster["a"]], {}, opus, clock(3000.0))
    assert isinstance(choice, placement.NoHeadroom) and choice.earliest_reset == wall.resets_at


def test_a_warned_account_is_the_last_choice_through_place() -> None:
    # "a" has the higher priority, so s1 and (before the warning) s0 go there. "a" passes 80 %
    # of its five-hour window while s1 runs; s2 then goes to "z" although "a" still ranks
    # first: place()'s warning tier, from the warning in "a"'s status.windows that the running
    # attempt reported.
    scenario = world(
        [account("a", 1000.0, slots=3, priority=1), account("z", 1e9, slots=3)],
        [session("s0", 0.0, 10.0), session("s1", 20.0, 900.0), session("s2", 850.0, 50.0)],
        horizon_s=HOUR,
    )
    policy = Placing()
    sim = Sim(scenario, policy).run()
    assert (sim.runs["s0"].account, sim.runs["s1"].account) == ("a", "a")
    assert sim.runs["s2"].account == "z"
    request, roster, _ = policy.calls[-1]
    assert request.model == "sonnet" and any(w.warning for w in roster["a"].windows)


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
    reports: list[tuple[float, str, AttemptEnd]] = []

    class Listening(HeadroomPolicy):
        def reported(self, account: str, report: AttemptEnd) -> None:
            reports.append((self.world.now, account, report))
            super().reported(account, report)

    scenario = world([account("a", 1000.0)], [session("s", 0.0, 900.0)], horizon_s=HOUR)
    policy = Listening()
    Sim(scenario, policy).run()
    assert [(t, a) for t, a, _ in reports] == [(pytest.approx(1 + 800.0), "a")]
    report = reports[0][2]
    assert report.warnings == {"five_hour": 0.8}
    assert report.utilization == {"five_hour": pytest.approx(0.8)}
    # the attempt's end (at 90 %) says so too, in what the operator keeps in status.windows
    (five,) = policy.roster["a"].windows
    assert five.status == "allowed_warning" and five.warning
    assert five.surpassed_threshold == 0.8 and five.utilization == pytest.approx(0.9)


def test_live_usage_is_read_at_most_once_a_minute_and_placement_sees_it() -> None:
    polls: list[float] = []

    class Counting(HeadroomLive):
        def observed(self, account: str, report: tuple[ReportedWindow, ...]) -> None:
            if account == "a":
                polls.append(self.world.now)
            super().observed(account, report)

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
