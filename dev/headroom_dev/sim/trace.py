"""Synthetic demand: a seeded pool of accounts and a few days of sessions arriving.

Every number here is an assumption, stated in docs/simulation.md. Anthropic does not publish
window budgets in tokens, so budgets are set relative to session appetite: a big account's
five-hour window holds about three sessions working flat out for five hours, and its weekly
window about eight full five-hour windows, so heavy use meets the weekly wall within days.
"""

from __future__ import annotations

import math
import random

from headroom_dev.sim.model import DAY, HOUR, AccountSpec, Costs, Scenario, SessionSpec, WindowSpec

MINUTE = 60.0
APPETITE_MEDIAN = 8_000.0 / MINUTE  # tokens per second while working
FIVE_HOUR = 5 * HOUR
WEEK = 7 * DAY


def tiers() -> list[tuple[str, int, float, int]]:
    """(tier, how many, five-hour budget in tokens, maxSessions)."""
    big = 3 * APPETITE_MEDIAN * FIVE_HOUR  # three median sessions for five hours
    return [("max20", 3, big, 6), ("max5", 5, big / 4, 3)]


def accounts(rng: random.Random) -> tuple[AccountSpec, ...]:
    out: list[AccountSpec] = []
    for tier, count, budget, slots in tiers():
        for i in range(count):
            weekly = 8 * budget
            # The trace starts mid-week for each account: its weekly window began up to six
            # days ago and is partly used, in proportion to how long ago it began.
            began = -rng.uniform(0.0, 6.0) * DAY
            used = weekly * rng.uniform(0.2, 0.6) * (-began / WEEK)
            out.append(
                AccountSpec(
                    name=f"{tier}-{i + 1}",
                    windows=(
                        WindowSpec("five_hour", FIVE_HOUR, budget),
                        WindowSpec("seven_day", WEEK, weekly, used0=used, started0=began),
                    ),
                    max_sessions=slots,
                    labels={"tier": tier},
                )
            )
    return tuple(out)


def arrival_rate(t: float, per_day: float) -> float:
    """Sessions per second at time t: a working-day bump (peak 14:00) over a night floor."""
    hour = (t % DAY) / HOUR
    shape = 0.25 + 1.75 * math.exp(-(((hour - 14.0) / 4.0) ** 2))
    mean_shape = 0.25 + 1.75 * 4.0 * math.sqrt(math.pi) / 24.0  # the bump's mean over a day
    return per_day / DAY * shape / mean_shape


def sessions(
    rng: random.Random, horizon_s: float, per_day: float, throttles_per_hour: float
) -> tuple[SessionSpec, ...]:
    out: list[SessionSpec] = []
    peak = arrival_rate(14 * HOUR, per_day)
    t = 0.0
    while True:  # a non-homogeneous Poisson process, by thinning
        t += rng.expovariate(peak)
        if t >= horizon_s:
            break
        if rng.random() > arrival_rate(t, per_day) / peak:
            continue
        appetite = APPETITE_MEDIAN * rng.lognormvariate(0.0, 0.5)
        minutes = min(6 * 60.0, max(5.0, 50.0 * rng.lognormvariate(0.0, 0.8)))
        work = appetite * minutes * MINUTE
        throttles: list[float] = []
        done = 0.0
        while throttles_per_hour > 0:  # bare 429s, spaced in the session's own working time
            done += appetite * rng.expovariate(throttles_per_hour / HOUR)
            if done >= work:
                break
            throttles.append(done)
        out.append(SessionSpec(f"s{len(out) + 1:04d}", t, work, appetite, tuple(throttles)))
    return tuple(out)


def scenario(
    seed: int,
    days: float = 3.0,
    per_day: float = 150.0,
    throttles_per_hour: float = 0.1,
    costs: Costs | None = None,
) -> Scenario:
    rng = random.Random(seed)  # noqa: S311 - a seeded simulation, not a secret
    horizon = days * DAY
    pool = accounts(rng)
    demand = sessions(rng, horizon, per_day, throttles_per_hour)
    return Scenario(pool, demand, horizon, costs or Costs(), seed)
